import type { UpstreamState } from "./state.js";

/**
 * How many recorded changes of an upstream's lists the registry takes from its connectors in any
 * hour. Each one appends the whole list to the registry's stream, which keeps every event and
 * which every node replays on start, so an upstream (never trusted) must not decide how fast that
 * grows: connectors pace what it triggers, but not the periodic rediscovery, nor the sum over
 * their replicas. Past the budget a change waits until the hour has room again (at most five
 * minutes more: the next rediscovery). An operator's own discovery is never held.
 */
export const LIST_CHANGE_BUDGET = { changes: 12, windowMs: 60 * 60_000, bytesPerChange: 64 * 1024 } as const;

/**
 * When each of the upstream's last recorded list changes was appended (ms), oldest first, a change
 * counted once per `bytesPerChange` of lists it recorded: twelve changes of the largest list a
 * message holds were 12 MB an hour (290 MB a day); the budget now bounds the bytes too (under
 * 2 MB an hour: 768 KiB of units, and one change that found room for a unit). A change is recorded whenever the hour has room for one unit, whatever its size.
 */
export function withListChange(recent: readonly number[] | undefined, at: number, recordedBytes: number): readonly number[] {
  const units = Math.min(LIST_CHANGE_BUDGET.changes, Math.max(1, Math.ceil(recordedBytes / LIST_CHANGE_BUDGET.bytesPerChange)));
  return [...(recent ?? []), ...Array<number>(units).fill(at)].slice(-LIST_CHANGE_BUDGET.changes);
}

/** The units of the budget the upstream's changes took in the hour before `now`, and until when more are held. */
export function listChangesOf(upstream: UpstreamState, now: number): { lastHour: number; heldUntil?: number } {
  const recent = (upstream.listChangedAt ?? []).filter((at) => now - at < LIST_CHANGE_BUDGET.windowMs);
  if (recent.length < LIST_CHANGE_BUDGET.changes) return { lastHour: recent.length };
  return { lastHour: recent.length, heldUntil: recent[0]! + LIST_CHANGE_BUDGET.windowMs };
}
