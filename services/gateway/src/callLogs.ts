import { LOG_PREFIX, LogMessage, McpLogLevel, notificationBudget, upstreamScoped } from "@manifold/contracts";
import { jsonOrNothing, type NatsConnection } from "@manifold/bus";
import { createInbox } from "@nats-io/transport-node";

/** The 2026-07-28 request `_meta` key naming the least severe level the caller wants (server/utilities/logging). */
export const LOG_LEVEL_META = "io.modelcontextprotocol/logLevel";

/**
 * The level each 2025-era session set with `logging/setLevel`, by its SDK server (one per session
 * on each replica that holds it: the level is kept in the session's record and applied to every
 * copy). A session that never set one gets no log messages, and its calls keep the fast path.
 * The upstream sessions are shared by every caller, so a level is never forwarded upstream: the
 * connector filters each call's messages by its caller's level.
 */
const sessionLevels = new WeakMap<object, McpLogLevel>();
export const sessionLogLevel = (server: object): McpLogLevel | undefined => sessionLevels.get(server);
export const setSessionLogLevel = (server: object, level: McpLogLevel | undefined): void => {
  if (level === undefined) sessionLevels.delete(server);
  else sessionLevels.set(server, level);
};

/** The level a 2026-07-28 request asks for in its `_meta`, if it names a valid one (none: no log messages). */
export function requestLogLevel(meta: unknown): McpLogLevel | undefined {
  if (typeof meta !== "object" || meta === null) return undefined;
  const level = McpLogLevel.safeParse((meta as Record<string, unknown>)[LOG_LEVEL_META]);
  return level.success ? level.data : undefined;
}

/**
 * Relays the connector's log messages for one call as `notifications/message` on the call's
 * stream. A callback subscription runs in arrival order, so every message published before the
 * reply is relayed before the result.
 */
export function relayLogs(nc: NatsConnection, upstream: string, send: (n: { method: "notifications/message"; params: LogMessage }) => Promise<void>) {
  const budget = notificationBudget();
  // Not an inbox: connectors may publish log messages here, never into the gateway's replies; and
  // only the connectors of the call's upstream (`upstreamScoped`).
  return nc.subscribe(createInbox(upstreamScoped(LOG_PREFIX, upstream)), {
    callback: (err, msg) => {
      const message = err || !budget.take(msg.data.length) ? undefined : LogMessage.safeParse(jsonOrNothing(msg.string()));
      if (!message?.success) return;
      void send({ method: "notifications/message", params: message.data }).catch(() => undefined);
    },
  });
}
