import { describe, expect, test } from "vitest";
import { LIST_CHANGE_BUDGET, listChangesOf, withListChange } from "./listChanges.js";
import type { UpstreamState } from "./state.js";

const upstreamWith = (listChangedAt: readonly number[]) => ({ listChangedAt }) as UpstreamState;
const HOUR = LIST_CHANGE_BUDGET.windowMs;

describe("an upstream's list change budget", () => {
  test("keeps only as many change times as the budget counts", () => {
    let recent: readonly number[] | undefined;
    for (let at = 1; at <= 30; at++) recent = withListChange(recent, at, 1_000);
    expect(recent).toEqual(Array.from({ length: LIST_CHANGE_BUDGET.changes }, (_, i) => 30 - LIST_CHANGE_BUDGET.changes + 1 + i));
  });

  test("holds changes once the hour holds the budget, until the oldest of them leaves the hour", () => {
    const times = Array.from({ length: LIST_CHANGE_BUDGET.changes }, (_, i) => 1_000 + i * 60_000);
    const last = times.at(-1)!;
    expect(listChangesOf(upstreamWith(times.slice(1)), last)).toEqual({ lastHour: LIST_CHANGE_BUDGET.changes - 1 });
    expect(listChangesOf(upstreamWith(times), last)).toEqual({ lastHour: LIST_CHANGE_BUDGET.changes, heldUntil: 1_000 + HOUR });
    // The oldest change has left the hour: room for one more.
    expect(listChangesOf(upstreamWith(times), 1_000 + HOUR)).toEqual({ lastHour: LIST_CHANGE_BUDGET.changes - 1 });
  });

  test("a change takes one unit per 64 KiB it records: large lists change less often", () => {
    const { bytesPerChange, changes } = LIST_CHANGE_BUDGET;
    expect(withListChange(undefined, 5, bytesPerChange)).toEqual([5]);
    expect(withListChange(undefined, 5, bytesPerChange + 1)).toEqual([5, 5]);
    // A message-sized list (1 MB) takes the whole hour: held until it leaves it.
    const big = withListChange([1, 2], 10, 1_000_000);
    expect(big).toEqual(Array(changes).fill(10));
    expect(listChangesOf(upstreamWith(big), 10)).toEqual({ lastHour: changes, heldUntil: 10 + HOUR });
    // An empty list still counts once.
    expect(withListChange(undefined, 7, 0)).toEqual([7]);
  });

  test("an upstream never listed has no changes and nothing held", () => {
    expect(listChangesOf({} as UpstreamState, Date.now())).toEqual({ lastHour: 0 });
  });
});
