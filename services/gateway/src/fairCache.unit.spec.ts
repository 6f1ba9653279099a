import { expect, test } from "vitest";
import { FairCache } from "./fairCache.js";

test("an owner past its sixteenth of the cache forgets its own oldest entry", () => {
  const cache = new FairCache<number>(32);
  cache.remember("victim", "v", 1);
  for (let i = 0; i < 100; i++) cache.remember(`a${i}`, "a", i);
  expect(cache.size).toBe(3);
  expect([cache.get("victim"), cache.get("a98"), cache.get("a99")]).toEqual([1, 98, 99]);
  expect(cache.get("a97")).toBeUndefined();
});

test("a full cache forgets its oldest entry, not every entry", () => {
  const cache = new FairCache<number>(32);
  for (let i = 0; i < 33; i++) cache.remember(`t${i}`, `p${i}`, i);
  expect(cache.size).toBe(32);
  expect(cache.get("t0")).toBeUndefined();
  expect(cache.get("t1")).toBe(1);
  expect(cache.get("t32")).toBe(32);
});

test("a key remembered again (a token expired, or verified at another endpoint) is one entry, under its new owner", () => {
  const cache = new FairCache<number>(32);
  cache.remember("t", "a", 1);
  cache.remember("t", "a", 2);
  cache.remember("u", "a", 3);
  // Two entries for `a`, and its share of 2 is not exceeded by the re-remembered key.
  expect(cache.size).toBe(2);
  cache.remember("w", "a", 4);
  expect([cache.get("t"), cache.get("u"), cache.get("w")]).toEqual([undefined, 3, 4]);
  cache.remember("w", "b", 5);
  cache.remember("x", "a", 6);
  expect([cache.get("u"), cache.get("w"), cache.get("x")]).toEqual([3, 5, 6]);
  cache.clear();
  expect(cache.size).toBe(0);
});
