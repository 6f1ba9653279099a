import { principalName } from "@manifold/domain";
import { Attr } from "@manifold/telemetry";
import type { McpCall } from "./mcpCall.js";

/** Longest JSON-RPC id a span keeps, as the progress token's bound at the edge. */
export const MAX_SPAN_REQUEST_ID = 256;

/**
 * A caller's JSON-RPC id as its span records it: the id is the caller's text, as long as the body
 * allows (1 MiB), and a span waits for export in a queue of up to 2,048. Past the bound it is cut
 * and copied: a slice (the SDK's own attribute limit is one) keeps the whole id alive with it (1,000
 * calls with 900 KB ids held 1.4 GB in the gateway). Only built when the call is traced.
 */
export function spanRequestId(requestId: string | number): string {
  const text = String(requestId);
  return text.length <= MAX_SPAN_REQUEST_ID ? text : `${Buffer.from(text.slice(0, MAX_SPAN_REQUEST_ID)).toString()}…`;
}

/** The attributes of a gateway tools/call span (MCP and JSON-RPC semantic conventions); 2026-07-28 calls have no session. */
export const callAttributes = (call: Pick<McpCall, "sessionId" | "virtualServer" | "principal">, tool: string, requestId: string | number, upstream: string, upstreamTool: string) => ({
  [Attr.mcpMethod]: "tools/call",
  [Attr.toolName]: tool,
  ...(call.sessionId === undefined ? {} : { [Attr.mcpSessionId]: call.sessionId }),
  [Attr.jsonRpcRequestId]: spanRequestId(requestId),
  [Attr.virtualServer]: call.virtualServer,
  [Attr.consumer]: call.principal.consumer ?? principalName(call.principal),
  [Attr.upstream]: upstream,
  [Attr.upstreamTool]: upstreamTool,
});
