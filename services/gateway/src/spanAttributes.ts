import { Attr } from "@manifold/telemetry";
import type { McpCall } from "./mcpCall.js";

/** The attributes of a gateway tools/call span (MCP and JSON-RPC semantic conventions); 2026-07-28 calls have no session. */
export const callAttributes = (call: Pick<McpCall, "sessionId" | "virtualServer" | "principal">, tool: string, requestId: string | number, upstream: string, upstreamTool: string) => ({
  [Attr.mcpMethod]: "tools/call",
  [Attr.toolName]: tool,
  ...(call.sessionId === undefined ? {} : { [Attr.mcpSessionId]: call.sessionId }),
  [Attr.jsonRpcRequestId]: String(requestId),
  [Attr.virtualServer]: call.virtualServer,
  [Attr.consumer]: call.principal.consumer ?? call.principal.id,
  [Attr.upstream]: upstream,
  [Attr.upstreamTool]: upstreamTool,
});
