import { ManifoldError } from "@manifold/contracts";
import { busReconnectedWithin, type NatsConnection } from "@manifold/bus";
import type { ToolRoute } from "./catalog.js";
import { resumeToolCall, type CallAnswer, type NotifySubjects } from "./toolCalls.js";

/** How long a request to one connector replica keeps being sent while nobody answers its subject, right after a reconnect. */
export const ROUND_SETTLE_MS = 2_000;
/** The bus clients' reconnect wait: a connector that lost the bus subscribes again about this often. */
const SETTLE_STEP_MS = 250;
/** A reconnect this recent (the gateway's own) makes a replica's silent subject a gap rather than proof. */
const RECONNECT_WINDOW_MS = 5_000;

/** Nobody subscribes to the subject: the replica is gone, or has not subscribed again since a reconnect. */
export const noConnector = (error: unknown): boolean => error instanceof ManifoldError && error.data?.reason === "no_connector";

/**
 * A request to the one connector replica that holds something (a 2026-07-28 round, a task). Right
 * after a nats-server restart nobody answering that replica's subject is no proof it is gone: it has
 * not subscribed again yet (helper-164: a retry 0.2 s after the restart was told "the round is
 * over", and the same requestState resumed the call 3 s later, the held call meanwhile waiting out
 * its budget). So while the gateway's own connection came back less than 5 s ago, the request is sent
 * again every reconnect wait, for up to ROUND_SETTLE_MS. Otherwise the refusal comes at once, as
 * before; a request answered costs one request. A restart this gateway did not see (a cluster node
 * of the connector's alone) is not covered.
 */
export async function toHeldReplica<T>(nc: NatsConnection, send: () => Promise<T>): Promise<T> {
  const giveUpAt = Date.now() + ROUND_SETTLE_MS;
  for (;;) {
    try {
      return await send();
    } catch (error) {
      if (!noConnector(error) || !busReconnectedWithin(nc, RECONNECT_WINDOW_MS) || Date.now() + SETTLE_STEP_MS > giveUpAt) throw error;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_STEP_MS));
    }
  }
}

/** A 2026-07-28 retry's answers to the connector holding its round (`toHeldReplica`). */
export const resumeSettled = (nc: NatsConnection, route: ToolRoute, subject: string, inputResponses: Record<string, unknown>, caller: string, notify?: NotifySubjects): Promise<CallAnswer> =>
  toHeldReplica(nc, () => resumeToolCall(nc, route, subject, inputResponses, caller, notify));
