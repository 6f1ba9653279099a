import { BusHeader, ProgressMessage } from "@manifold/contracts";
import { busRequest, type NatsConnection } from "@manifold/bus";
import type { CallToolRequest, CallToolResult, ServerNotification } from "@modelcontextprotocol/sdk/types.js";
import { createInbox, nuid } from "@nats-io/transport-node";
import type { ToolRoute } from "./catalog.js";

/** The connector answers first when the upstream times out; this margin covers the bus round trip. */
const BUS_MARGIN_MS = 250;

export interface CallContext {
  signal: AbortSignal;
  /** The agent's pass-through headers for this call's upstream, if any. */
  upstreamHeaders: Record<string, string> | undefined;
  sendNotification: (notification: ServerNotification) => Promise<void>;
}

/**
 * The hot path: one bus request to the connector of the tool's upstream, under the
 * upstream's original tool name, and the result handed back exactly as it came. A
 * cancellation is broadcast to the upstream's connectors; progress is relayed only when
 * the agent asked for it.
 */
export async function forwardToolCall(nc: NatsConnection, route: ToolRoute, params: CallToolRequest["params"], ctx: CallContext): Promise<CallToolResult> {
  const callId = nuid.next();
  const headers: Record<string, string> = { [BusHeader.callId]: callId };
  if (ctx.upstreamHeaders) headers[BusHeader.upstreamHeaders] = JSON.stringify(ctx.upstreamHeaders);

  const progressToken = params._meta?.progressToken;
  // A callback subscription runs in arrival order, so every progress message published
  // before the reply is relayed before the result.
  const progress =
    progressToken === undefined
      ? undefined
      : nc.subscribe(createInbox(), {
          callback: (err, msg) => {
            const update = err ? undefined : ProgressMessage.safeParse(msg.json());
            if (!update?.success) return;
            void ctx.sendNotification({ method: "notifications/progress", params: { ...update.data, progressToken } }).catch(() => undefined);
          },
        });
  if (progress) headers[BusHeader.progressSubject] = progress.getSubject();
  const cancel = () => nc.publish(route.cancelSubject, callId);
  ctx.signal.addEventListener("abort", cancel, { once: true });
  try {
    const reply = await busRequest(nc, route.subject, JSON.stringify({ ...params, name: route.tool }), {
      timeoutMs: route.timeoutMs,
      busTimeoutMs: route.timeoutMs + BUS_MARGIN_MS,
      target: `upstream '${route.upstream}'`,
      headers,
    });
    return reply.json<CallToolResult>();
  } finally {
    ctx.signal.removeEventListener("abort", cancel);
    progress?.unsubscribe();
  }
}
