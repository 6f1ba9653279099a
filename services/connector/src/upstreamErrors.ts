import { JsonLimits, ManifoldError, RESULT_TOO_DEEP, jsonValueTooDeep } from "@manifold/contracts";
import { ErrorCode as McpErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";

/** Tells apart: the upstream answered with an error, it took too long, or it cannot be reached. */
export function mapUpstreamError(error: unknown, target: string, timeoutMs: number): ManifoldError {
  if (error instanceof ManifoldError) return error;
  if (error instanceof McpError) {
    if (error.code === McpErrorCode.RequestTimeout) {
      return new ManifoldError("upstream_timeout", `${target} did not answer within ${timeoutMs} ms`, { timeoutMs });
    }
    if (error.code === McpErrorCode.ConnectionClosed) {
      return new ManifoldError("upstream_unavailable", `${target} closed the connection`);
    }
    // The upstream's own JSON-RPC error: its message and code are the caller's to see.
    return new ManifoldError("upstream_error", `${target} returned an error: ${error.message}`, {
      upstreamCode: error.code,
      ...(error.data === undefined ? {} : { upstreamData: error.data }),
    });
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new ManifoldError("upstream_unavailable", `${target} could not be reached: ${reason}`);
}

/** Failures that say the upstream is unhealthy (and count for its circuit breaker). */
export const isHealthFailure = (error: ManifoldError) => error.code === "upstream_unavailable" || error.code === "upstream_timeout";

/**
 * An upstream's result or tool list nested past `JsonLimits.resultDepth` is refused here, before
 * it is encoded (`JSON.stringify` overflows the stack past a few thousand levels) or handed on
 * to services that walk it.
 */
export function mustNotNestTooDeep(value: unknown, target: string, what: string): void {
  const maxDepth = JsonLimits.resultDepth;
  if (!jsonValueTooDeep(value, maxDepth)) return;
  throw new ManifoldError("upstream_error", `${target} returned a ${what} nested deeper than ${maxDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth });
}
