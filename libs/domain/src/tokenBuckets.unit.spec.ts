import { expect, test } from "vitest";
import { TokenBuckets } from "./tokenBuckets.js";

test("units reads a caller's bucket as it refills, takes nothing, and makes no bucket for a caller without one", () => {
  let now = 0;
  const buckets = new TokenBuckets(10, { now: () => now });
  expect(buckets.units("a")).toBe(10);
  expect(buckets.take("a", 4)).toBe(true);
  expect(buckets.units("a")).toBe(6);
  expect(buckets.units("a")).toBe(6);
  now = 200;
  expect(buckets.units("a")).toBe(8);
  now = 10_000;
  expect(buckets.units("a"), "a second's worth at most").toBe(10);
  expect(buckets.take("b", 11)).toBe(false);
  expect(buckets.units("b")).toBe(10);
});
