import type { HealthStatus } from "@manifold/contracts";
import type { CircuitBreaker } from "./circuitBreaker.js";
import type { UpstreamSession } from "./upstreamSession.js";

/**
 * down: the circuit is open, or the shared session is not connected and its last attempt
 * failed. degraded: recovering (half-open circuit, reconnecting) or recent failures below the
 * threshold. up: connected and healthy.
 */
export function healthOf(session: UpstreamSession, breaker: CircuitBreaker): { status: HealthStatus; reason?: string } {
  if (breaker.state === "open") return { status: "down", reason: `circuit open: ${breaker.lastReason ?? "repeated failures"}` };
  if (session.state !== "connected") {
    if (session.lastError) return { status: "down", reason: session.lastError };
    return { status: "degraded", reason: session.state === "connecting" ? "connecting" : "not connected" };
  }
  if (breaker.state === "half-open") return { status: "degraded", reason: "circuit half-open: probing" };
  if (breaker.failures > 0) return { status: "degraded", reason: breaker.lastReason ?? "recent failures" };
  return { status: "up" };
}
