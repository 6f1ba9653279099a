import { busRequest, type NatsConnection } from "@manifold/bus";
import type { CallToolRequest, CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { ToolRoute } from "./catalog.js";

/**
 * The hot path: one bus request to the connector of the tool's upstream, under the
 * upstream's original tool name, and the result handed back exactly as it came.
 */
export async function forwardToolCall(
  nc: NatsConnection,
  route: ToolRoute,
  params: CallToolRequest["params"],
  timeoutMs: number,
): Promise<CallToolResult> {
  const payload = JSON.stringify({ ...params, name: route.tool });
  const reply = await busRequest(nc, route.subject, payload, { timeoutMs, target: `upstream '${route.upstream}'` });
  return reply.json<CallToolResult>();
}
