import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { GroupedTimer } from "./groupedTimer.js";

describe("GroupedTimer", () => {
  beforeEach(() => void vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date", "performance"] }));
  afterEach(() => void vi.useRealTimers());

  test("timers of distinct long durations ask Node for few distinct durations (one timer list each)", () => {
    const durations = new Set<number>();
    const spy = vi.spyOn(globalThis, "setTimeout");
    const timers = Array.from({ length: 64 }, (_, i) => new GroupedTimer(29_990 + i, () => undefined));
    for (const [, ms] of spy.mock.calls) durations.add(ms as number);
    spy.mockRestore();
    // Before: one duration per timer (64 lists, each made and dropped again as its call ends).
    expect(durations.size).toBeLessThanOrEqual(2);
    for (const timer of timers) timer.clear();
  });

  test.each([1, 500, 1_023, 1_024, 1_025, 2_047, 29_999, 30_000])("a timer of %i ms fires at its time, not before", (ms) => {
    let fired = 0;
    new GroupedTimer(ms, () => fired++);
    vi.advanceTimersByTime(ms - 1);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(60_000);
    expect(fired).toBe(1);
  });

  test("cleared before its first part or during its last, it never fires", () => {
    let fired = 0;
    new GroupedTimer(5_000, () => fired++).clear();
    const late = new GroupedTimer(5_000, () => fired++);
    vi.advanceTimersByTime(4_500);
    late.clear();
    vi.advanceTimersByTime(60_000);
    expect(fired).toBe(0);
  });

  test("a first part that runs past the time (a stalled loop) fires at once; a step of the wall clock moves nothing", () => {
    let fired = 0;
    new GroupedTimer(5_000, () => fired++);
    const stalled = performance.now() + 10_000;
    const now = vi.spyOn(performance, "now").mockImplementation(() => stalled);
    vi.advanceTimersByTime(4_096);
    now.mockRestore();
    expect(fired).toBe(1);
    new GroupedTimer(5_000, () => fired++);
    vi.setSystemTime(Date.now() - 3_600_000);
    vi.advanceTimersByTime(4_999);
    expect(fired).toBe(1);
    vi.advanceTimersByTime(1);
    expect(fired).toBe(2);
  });
});
