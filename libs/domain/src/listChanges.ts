import type { UpstreamState } from "./state.js";

/**
 * How many recorded changes of an upstream's lists the registry takes from its connectors in any
 * hour. Each one appends the whole list to the registry's stream, which keeps every event and
 * which every node replays on start, so an upstream (never trusted) must not decide how fast that
 * grows: connectors pace what it triggers, but not the periodic rediscovery, nor the sum over
 * their replicas. Past the budget a change waits until the hour has room again (at most five
 * minutes more: the next rediscovery). An operator's own discovery is never held.
 */
export const LIST_CHANGE_BUDGET = { changes: 12, windowMs: 60 * 60_000 } as const;

/** When each of the upstream's last recorded list changes was appended (ms), oldest first. */
export const withListChange = (recent: readonly number[] | undefined, at: number): readonly number[] =>
  [...(recent ?? []), at].slice(-LIST_CHANGE_BUDGET.changes);

/** The upstream's recorded list changes in the hour before `now`, and until when more are held. */
export function listChangesOf(upstream: UpstreamState, now: number): { lastHour: number; heldUntil?: number } {
  const recent = (upstream.listChangedAt ?? []).filter((at) => now - at < LIST_CHANGE_BUDGET.windowMs);
  if (recent.length < LIST_CHANGE_BUDGET.changes) return { lastHour: recent.length };
  return { lastHour: recent.length, heldUntil: recent[0]! + LIST_CHANGE_BUDGET.windowMs };
}
