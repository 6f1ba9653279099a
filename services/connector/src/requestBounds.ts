import { BusHeader, ManifoldError, upstreamMoved } from "@manifold/contracts";
import { tooLargeMessage, type HeaderReader } from "@manifold/bus";
import { checkPassthrough } from "@manifold/domain";

/*
 * What bounds every request to an upstream (a call, a listing, a task's or any other request):
 * the time it may take, the size of its answer, the headers it may pass through. Plain functions,
 * so the call path reaches them without an object in between.
 */

/** The time this call may still take: the caller's budget, capped by the upstream's (`timeoutMs`). */
export function budgetOf(headers: HeaderReader | undefined, timeoutMs: number): number {
  const requested = Number(headers?.get(BusHeader.timeoutMs));
  return requested > 0 ? Math.min(requested, timeoutMs) : timeoutMs;
}

/** An answer as the reply's bytes, or a clear error when it is more than one bus message may carry. */
export function fitting(answer: string, what: string, target: string, maxBytes: number | undefined): Uint8Array {
  // Buffer.from, not TextEncoder: a slice of a shared pool, not a new allocation per call.
  const bytes = Buffer.from(answer);
  if (maxBytes !== undefined && bytes.length > maxBytes) throw tooLarge(`${target} returned ${bytes.length} bytes for '${what}'`, bytes.length, maxBytes);
  return bytes;
}

export function tooLarge(answered: string, bytes: number, maxBytes: number): ManifoldError {
  return new ManifoldError("payload_too_large", tooLargeMessage(answered, maxBytes), { bytes, maxBytes });
}

/** The pass-through headers a request carries (`BusHeader.upstreamHeaders`), as far as the upstream allows them. */
export function passthroughOf(raw: string | undefined, upstream: string, allowed: ReadonlySet<string>, target: string): Record<string, string> | undefined {
  if (!raw) return undefined;
  let entry: unknown;
  try {
    entry = JSON.parse(raw);
  } catch {
    throw new ManifoldError("invalid_request", `pass-through headers for ${target} are not valid JSON`);
  }
  return checkPassthrough(upstream, entry, allowed);
}

/**
 * A caller's own upstream token goes to the address it was obtained for (`BusHeader.upstreamResource`)
 * and nowhere else: this worker's upstream, re-pointed since (or the gateway's view lagging), is refused.
 */
export function mustBeObtainedFor(obtainedFor: string | undefined, url: string | undefined, target: string): void {
  if (obtainedFor && obtainedFor !== url) throw upstreamMoved(target);
}
