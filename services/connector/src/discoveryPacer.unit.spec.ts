import { afterEach, beforeEach, expect, test, vi } from "vitest";
import { DISCOVERY_BURST, DISCOVERY_MAX_GAP_MS, DiscoveryPacer } from "./discoveryPacer.js";

beforeEach(() => void vi.useFakeTimers());
/** An hour of triggers every 5 ms is 720,000 turns of the fake clock: 4.6 s on a quiet machine, more on a busy one. */
const STORM = { timeout: 30_000 };
afterEach(() => void vi.useRealTimers());

/** A pacer whose discoveries take `ms` each; `starts` records when each began. */
function pacer(ms = 0) {
  const starts: number[] = [];
  let running = 0;
  let most = 0;
  const paced = new DiscoveryPacer(async () => {
    starts.push(Date.now());
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, ms));
    running--;
  });
  return { paced, starts, most: () => most };
}

test("a burst of triggers becomes one discovery, 100 ms after the first", async () => {
  const { paced, starts } = pacer();
  const t0 = Date.now();
  for (let i = 0; i < 50; i++) paced.trigger();
  await vi.advanceTimersByTimeAsync(1_000);
  expect(starts).toEqual([t0 + 100]);
});

test("attack: an upstream announcing a change every 5 ms for an hour is discovered a few dozen times, not 36,000", STORM, async () => {
  const { paced, starts } = pacer(50);
  for (let t = 0; t < 3_600_000; t += 5) {
    paced.trigger();
    await vi.advanceTimersByTimeAsync(5);
  }
  // The burst, then gaps of 1 s, 2 s, … 5 min: about 24 in the first hour, then one each 5 minutes.
  expect(starts.length).toBeGreaterThan(DISCOVERY_BURST);
  expect(starts.length).toBeLessThan(30);
  const last = starts.at(-1)! - starts.at(-2)!;
  expect(last).toBe(DISCOVERY_MAX_GAP_MS);
  // The storm ends: what changed last is still discovered, at most one gap later.
  const count = starts.length;
  await vi.advanceTimersByTimeAsync(DISCOVERY_MAX_GAP_MS + 1_000);
  expect(starts.length).toBe(count + 1);
  // Quiet for twice the gap: the next change is discovered at once again.
  await vi.advanceTimersByTimeAsync(2 * DISCOVERY_MAX_GAP_MS);
  const before = Date.now();
  paced.trigger();
  await vi.advanceTimersByTimeAsync(200);
  expect(starts.at(-1)).toBe(before + 100);
});

test("attack: one discovery at a time, however slow the listing; triggers meanwhile make one more after it", async () => {
  const { paced, starts, most } = pacer(3_000);
  for (let t = 0; t < 10_000; t += 20) {
    paced.trigger();
    await vi.advanceTimersByTimeAsync(20);
  }
  await vi.advanceTimersByTimeAsync(60_000);
  expect(most()).toBe(1);
  // Back to back, each after the one before ended: 10 s of 3 s listings is four, plus the one the last triggers ask for.
  expect(starts.length).toBeLessThanOrEqual(5);
});

test("a few changes by hand, seconds apart, are each discovered at once", async () => {
  const { paced, starts } = pacer();
  const asked: number[] = [];
  for (let i = 0; i < DISCOVERY_BURST; i++) {
    asked.push(Date.now());
    paced.trigger();
    await vi.advanceTimersByTimeAsync(1_500);
  }
  expect(starts).toEqual(asked.map((t) => t + 100));
});

test("closed, it starts nothing", async () => {
  const { paced, starts } = pacer();
  paced.trigger();
  paced.close();
  paced.trigger();
  await vi.advanceTimersByTimeAsync(10_000);
  expect(starts).toEqual([]);
});

test("the periodic rediscovery neither waits for a storm's gap nor keeps it: after the storm, a change is discovered at once", STORM, async () => {
  const { paced, starts } = pacer();
  for (let t = 0; t < 3_600_000; t += 5) {
    paced.trigger();
    await vi.advanceTimersByTimeAsync(5);
  }
  // Two hours of only the periodic rediscovery, every 5 minutes: each runs after the debounce.
  for (let i = 0; i < 24; i++) {
    await vi.advanceTimersByTimeAsync(DISCOVERY_MAX_GAP_MS - 100);
    const at = Date.now();
    paced.trigger(true);
    await vi.advanceTimersByTimeAsync(100);
    expect(starts.at(-1)! - at).toBeGreaterThanOrEqual(100);
    expect(starts.at(-1)! - at).toBeLessThan(110);
  }
  // Before: the periodic runs kept the streak, and this change waited up to 5 minutes (204.6 s measured).
  const at = Date.now();
  paced.trigger();
  await vi.advanceTimersByTimeAsync(200);
  expect(starts.at(-1)! - at).toBeGreaterThanOrEqual(100);
  expect(starts.at(-1)! - at).toBeLessThan(110);
});
