import { BusHeader, ManifoldError, PROGRESS_PREFIX, ProgressMessage, Subjects } from "@manifold/contracts";
import { busRequest, type Msg, type NatsConnection } from "@manifold/bus";
import type { CallToolRequest } from "@modelcontextprotocol/sdk/types.js";
import { createInbox } from "@nats-io/transport-node";
import type { ToolRoute } from "./catalog.js";

const ENCODER = new TextEncoder();

/** The connector answers first when the upstream times out; this margin covers the bus round trip. */
const BUS_MARGIN_MS = 250;

export interface CallOptions {
  /** Lets a cancellation find the call on whichever connector replica runs it. */
  callId: string;
  /** The agent's pass-through headers for this call's upstream, if any. */
  upstreamHeaders?: Record<string, string> | undefined;
  progressSubject?: string;
}

/** Keys of `_meta` that belong to the agent's hop (2026-07-28 envelope, W3C trace context), not to the upstream's. */
const isAgentHopKey = (key: string) => key.startsWith("io.modelcontextprotocol/") || key === "traceparent" || key === "tracestate" || key === "baggage";

/**
 * The call's `_meta` as the upstream may see it: the agent's envelope (protocol revision,
 * capabilities, client identity) and trace context describe the agent's hop only; the connector
 * speaks for itself upstream and carries the trace in the bus headers. Undefined (left out of
 * the JSON) when nothing else is there.
 */
function hopMeta(meta: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (meta === undefined) return undefined;
  let kept: Record<string, unknown> | undefined;
  for (const key of Object.keys(meta)) if (!isAgentHopKey(key)) (kept ??= {})[key] = meta[key];
  return kept;
}

/**
 * The hot path: one bus request to the connector of the tool's upstream, under the
 * upstream's original tool name. The result comes back as the connector's JSON text and
 * is handed on without being parsed again.
 */
export async function requestToolCall(
  nc: NatsConnection,
  route: ToolRoute,
  params: CallToolRequest["params"],
  options: CallOptions,
): Promise<{ text: string; sentBytes: number; receivedBytes: number }> {
  const headers: Record<string, string> = { [BusHeader.callId]: options.callId, [BusHeader.tool]: route.tool };
  if (options.upstreamHeaders) headers[BusHeader.upstreamHeaders] = JSON.stringify(options.upstreamHeaders);
  if (options.progressSubject) headers[BusHeader.progressSubject] = options.progressSubject;
  // Encoded once here: the bus sends these bytes, and their length is the size the audit records.
  const payload = ENCODER.encode(JSON.stringify({ ...params, name: route.tool, _meta: hopMeta(params._meta) }));
  let reply: Msg;
  try {
    reply = await busRequest(nc, route.subject, payload, {
      timeoutMs: route.timeoutMs,
      busTimeoutMs: route.timeoutMs + BUS_MARGIN_MS,
      target: `upstream '${route.upstream}'`,
      headers,
      // A connector that dies holding the call is noticed within seconds, not at the call's timeout.
      heartbeats: true,
    });
  } catch (error) {
    // A connector that is only cut off from the bus would go on with the call: it is told to stop.
    if (error instanceof ManifoldError && error.data?.reason === "connector_lost") cancelToolCall(nc, options.callId);
    throw error;
  }
  return { text: reply.string(), sentBytes: payload.length, receivedBytes: reply.data.length };
}

/**
 * Broadcasts a cancellation to every connector; the one running the call aborts it. Best
 * effort: it also runs from abort listeners, where a throw (a closed connection) would end
 * the process, and a bus that cannot carry it cannot carry the call's answer either.
 */
export function cancelToolCall(nc: NatsConnection, callId: string): void {
  try {
    nc.publish(Subjects.callCancel, callId);
  } catch {
    // Nothing to cancel through: see above.
  }
}

/**
 * Relays the connector's progress messages for one call as MCP notifications carrying the
 * agent's own token. A callback subscription runs in arrival order, so every progress
 * message published before the reply is relayed before the result.
 */
export function relayProgress(nc: NatsConnection, progressToken: string | number, send: (n: { method: "notifications/progress"; params: ProgressMessage & { progressToken: string | number } }) => Promise<void>) {
  // Not an inbox: connectors may publish progress here, never into the gateway's replies.
  return nc.subscribe(createInbox(PROGRESS_PREFIX), {
    callback: (err, msg) => {
      const update = err ? undefined : ProgressMessage.safeParse(msg.json());
      if (!update?.success) return;
      void send({ method: "notifications/progress", params: { ...update.data, progressToken } }).catch(() => undefined);
    },
  });
}
