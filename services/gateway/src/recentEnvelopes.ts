/**
 * The 2026-07-28 envelopes (client info, capabilities, log level) the SDK most recently found well
 * formed, kept as values: a client repeats its envelope on every request, and comparing it member
 * by member with the last few costs a few hundred instructions, where the JSON text that keys every
 * envelope ever accepted (`mcpCall.ts`) cost ~5,000 a call to make (callgrind). A request matching
 * none is keyed by its text as before; a match implies the same text (same members, same order, the
 * same values), so it never admits what the keyed set would not.
 */
const RECENT = 8;
const recent: (readonly unknown[])[] = [];

/**
 * Remembers an accepted envelope by its key (the JSON text of its three members), most recent first.
 * `ifRoom`: only into a free place (an envelope found again by its key), so that clients taking turns
 * past `RECENT` do not push each other out on every request.
 */
export function rememberEnvelope(key: string, ifRoom = false): void {
  if (recent.length >= RECENT) {
    if (ifRoom) return;
    recent.pop();
  }
  // Parsed from the key: the request's own objects may still change as the lanes read them.
  recent.unshift(JSON.parse(key) as unknown[]);
}

/** Whether an envelope whose members are these values was remembered. */
export function recentEnvelope(clientInfo: unknown, capabilities: unknown, logLevel: unknown): boolean {
  for (const envelope of recent) {
    if (sameJson(envelope[0], clientInfo ?? null) && sameJson(envelope[1], capabilities ?? null) && sameJson(envelope[2], logLevel ?? null)) return true;
  }
  return false;
}

/**
 * Forgets every envelope (tests). Clearing the keyed set at its bound need not forget these: each
 * was accepted by the SDK, and stays well formed whatever the set holds.
 */
export function forgetEnvelopes(): void {
  recent.length = 0;
}

/** The most values compared for one pair: an envelope this large is keyed by its text instead. */
const MAX_VALUES = 512;

/**
 * Whether two parsed JSON values would be written as the same JSON text: the same primitives, arrays
 * of equal elements, objects with equal members in the same order. Iterative and bounded: the values
 * are the caller's.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  const left: unknown[] = [a];
  const right: unknown[] = [b];
  let compared = 0;
  while (left.length > 0) {
    if (++compared > MAX_VALUES) return false;
    const x = left.pop();
    const y = right.pop();
    if (x === y) continue;
    if (typeof x !== "object" || typeof y !== "object" || x === null || y === null) return false;
    const xArray = Array.isArray(x);
    if (xArray !== Array.isArray(y)) return false;
    if (xArray) {
      const ys = y as unknown[];
      if (x.length !== ys.length) return false;
      for (let i = 0; i < x.length; i++) {
        left.push(x[i]);
        right.push(ys[i]);
      }
      continue;
    }
    const xKeys = Object.keys(x);
    const yKeys = Object.keys(y);
    if (xKeys.length !== yKeys.length) return false;
    for (let i = 0; i < xKeys.length; i++) {
      const key = xKeys[i]!;
      if (key !== yKeys[i]) return false;
      left.push((x as Record<string, unknown>)[key]);
      right.push((y as Record<string, unknown>)[key]);
    }
  }
  return true;
}
