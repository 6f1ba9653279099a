import type { McpCall } from "./mcpCall.js";

/** The shape both SDK generations pass to handlers as `authInfo` (the one per-request value they carry). */
interface EdgeAuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
  extra?: Record<string, unknown>;
}

/**
 * What closing a 2026-07-28 tools/call's response stream cancels (the seam listens; there is no
 * session to name the call): the request's own call, or, for a retry, the held call it resumes.
 */
export interface CancelTarget {
  id: string;
}

/**
 * Hands the call object the HTTP edge built to the SDK lane's handlers, through the transport's
 * `authInfo`, so nothing is parsed or looked up again behind the seam. `cancels` is set when the
 * seam already named the call (a modern tools/call, which it cancels when the stream closes).
 */
export function edgeContext(call: McpCall, cancels?: CancelTarget): EdgeAuthInfo {
  return { token: "", clientId: call.principal.id, scopes: [], extra: { call, cancels } };
}

export function callOf(authInfo: { extra?: Record<string, unknown> } | undefined): { call: McpCall; cancels: CancelTarget | undefined } {
  const extra = authInfo?.extra as { call?: McpCall; cancels?: CancelTarget } | undefined;
  // Every request reaches an SDK lane through the seam, which always sets it.
  if (!extra?.call) throw new Error("an MCP request reached an SDK lane without its call object");
  return { call: extra.call, cancels: extra.cancels };
}
