import type { McpCall } from "./mcpCall.js";

/** The shape both SDK generations pass to handlers as `authInfo` (the one per-request value they carry). */
interface EdgeAuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
  extra?: Record<string, unknown>;
}

/**
 * Hands the call object the HTTP edge built to the SDK lane's handlers, through the transport's
 * `authInfo`, so nothing is parsed or looked up again behind the seam. `callId` is set when the
 * seam already named the call (a modern tools/call, which it cancels when the stream closes).
 */
export function edgeContext(call: McpCall, callId?: string): EdgeAuthInfo {
  return { token: "", clientId: call.principal.id, scopes: [], extra: { call, callId } };
}

export function callOf(authInfo: { extra?: Record<string, unknown> } | undefined): { call: McpCall; callId: string | undefined } {
  const extra = authInfo?.extra as { call?: McpCall; callId?: string } | undefined;
  // Every request reaches an SDK lane through the seam, which always sets it.
  if (!extra?.call) throw new Error("an MCP request reached an SDK lane without its call object");
  return { call: extra.call, callId: extra.callId };
}
