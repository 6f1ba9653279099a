import { Attr } from "@manifold/telemetry";
import type { Session } from "./sessions.js";

/** The attributes of a gateway tools/call span (MCP and JSON-RPC semantic conventions). */
export const callAttributes = (session: Pick<Session, "id" | "virtualServer" | "principal">, tool: string, requestId: string | number, upstream: string, upstreamTool: string) => ({
  [Attr.mcpMethod]: "tools/call",
  [Attr.toolName]: tool,
  [Attr.mcpSessionId]: session.id,
  [Attr.jsonRpcRequestId]: String(requestId),
  [Attr.virtualServer]: session.virtualServer,
  [Attr.consumer]: session.principal.consumer ?? session.principal.id,
  [Attr.upstream]: upstream,
  [Attr.upstreamTool]: upstreamTool,
});
