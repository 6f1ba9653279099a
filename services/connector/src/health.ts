import type { HealthStatus } from "@manifold/contracts";
import type { CircuitBreaker } from "./circuitBreaker.js";
import { toolTrouble, type ToolShare } from "./toolShares.js";
import type { UpstreamSession } from "./upstreamSession.js";

/**
 * down: the circuit is open, the shared session is not connected and its last attempt
 * failed, or it is connected and the upstream answers nothing (`silent`: a call timed out and so did
 * a ping, `UpstreamLiveness`). degraded: recovering (half-open circuit, reconnecting), recent failures below the
 * threshold, some tools' own circuits open (the upstream's other tools still work), or its last
 * listing failed (a session that connects but cannot list looked "up" while it reconnected). up:
 * connected and healthy. Failures of callers' own sessions never show here.
 */
export function healthOf(
  session: UpstreamSession,
  breaker: CircuitBreaker,
  tools: ReadonlySet<ToolShare> = new Set(),
  listing?: string,
  silent?: string,
): { status: HealthStatus; reason?: string } {
  if (breaker.state === "open") return { status: "down", reason: `circuit open: ${breaker.lastReason ?? "repeated failures"}` };
  if (session.state !== "connected") {
    if (session.lastError) return { status: "down", reason: session.lastError };
    return { status: "degraded", reason: session.state === "connecting" ? "connecting" : "not connected" };
  }
  if (silent !== undefined) return { status: "down", reason: silent };
  if (breaker.state === "half-open") return { status: "degraded", reason: "circuit half-open: probing" };
  if (breaker.failures > 0) return { status: "degraded", reason: breaker.lastReason ?? "recent failures" };
  if (tools.size > 0) return { status: "degraded", reason: toolsReason(tools) };
  // Connected, yet its lists cannot be read: calls may work, but drift goes unseen.
  if (listing !== undefined) return { status: "degraded", reason: `its lists cannot be read: ${listing}` };
  return UP;
}

/** The answer of nearly every call's check: one object, not one per call. */
const UP: { status: HealthStatus } = Object.freeze({ status: "up" });

/** At most a few tools are named, so the reason stays short. */
function toolsReason(tools: ReadonlySet<ToolShare>): string {
  const named: string[] = [];
  for (const share of tools) {
    if (named.length === 3) break;
    named.push(`'${share.tool}' (${toolTrouble(share)})`);
  }
  return `circuit open for tool${tools.size > 1 ? "s" : ""} ${named.join(", ")}${tools.size > 3 ? ` and ${tools.size - 3} more` : ""}`;
}
