import { ManifoldError } from "@manifold/contracts";
import { busReconnectedWithin, type NatsConnection } from "@manifold/bus";
import type { ToolRoute } from "./catalog.js";
import { resumeToolCall, type CallAnswer, type NotifySubjects } from "./toolCalls.js";

/** How long a 2026-07-28 retry keeps asking for its round while no connector answers the round's subject. */
export const ROUND_SETTLE_MS = 2_000;
/** The bus clients' reconnect wait: a connector that lost the bus subscribes again about this often. */
const SETTLE_STEP_MS = 250;
/** A reconnect this recent (the gateway's own) makes a round's silent subject a gap rather than proof. */
const RECONNECT_WINDOW_MS = 5_000;

const noConnector = (error: unknown) => error instanceof ManifoldError && error.data?.reason === "no_connector";

/**
 * A 2026-07-28 retry's answers to the connector holding its round. Right after a nats-server
 * restart nobody answering the round's subject is no proof the round is over: the connector holding
 * it has not subscribed again yet (helper-164: a retry 0.2 s after the restart was told "the round
 * is over", and the same requestState resumed the call 3 s later, the held call meanwhile waiting
 * out its budget). So while the gateway's own connection came back less than 5 s ago, the answers
 * are sent again every reconnect wait, for up to ROUND_SETTLE_MS. Otherwise a spent state (answered,
 * ended, its replica killed) is refused at once, as before; an answered round costs one request.
 * A restart this gateway did not see (a cluster node of the connector's alone) is not covered.
 */
export async function resumeSettled(nc: NatsConnection, route: ToolRoute, subject: string, inputResponses: Record<string, unknown>, caller: string, notify?: NotifySubjects): Promise<CallAnswer> {
  const giveUpAt = Date.now() + ROUND_SETTLE_MS;
  for (;;) {
    try {
      return await resumeToolCall(nc, route, subject, inputResponses, caller, notify);
    } catch (error) {
      if (!noConnector(error) || !busReconnectedWithin(nc, RECONNECT_WINDOW_MS) || Date.now() + SETTLE_STEP_MS > giveUpAt) throw error;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_STEP_MS));
    }
  }
}
