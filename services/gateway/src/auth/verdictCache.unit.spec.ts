import { expect, test } from "vitest";
import { VerdictCache } from "./verdictCache.js";

const verdict = (id: string) => ({ principal: { id, groups: [] }, expiresAt: Number.POSITIVE_INFINITY });

test("a principal past its sixteenth of the cache forgets its own oldest token", () => {
  const cache = new VerdictCache(32);
  cache.remember("victim", verdict("v"));
  for (let i = 0; i < 100; i++) cache.remember(`a${i}`, verdict("a"));
  expect(cache.size).toBe(3);
  expect([cache.get("victim"), cache.get("a98"), cache.get("a99")].every(Boolean)).toBe(true);
  expect(cache.get("a97")).toBeUndefined();
});

test("a full cache forgets its oldest entry, not every entry", () => {
  const cache = new VerdictCache(32);
  for (let i = 0; i < 33; i++) cache.remember(`t${i}`, verdict(`p${i}`));
  expect(cache.size).toBe(32);
  expect(cache.get("t0")).toBeUndefined();
  expect(cache.get("t1")).toBeDefined();
  expect(cache.get("t32")).toBeDefined();
});

test("a token verified again (expired, or at another endpoint) is one entry, under its new principal", () => {
  const cache = new VerdictCache(32);
  cache.remember("t", verdict("a"));
  cache.remember("t", verdict("a"));
  cache.remember("u", verdict("a"));
  // Two entries for `a`, and its share of 2 is not exceeded by the re-remembered token.
  expect(cache.size).toBe(2);
  cache.remember("w", verdict("a"));
  expect([cache.get("t"), cache.get("u"), cache.get("w")].map(Boolean)).toEqual([false, true, true]);
  cache.clear();
  expect(cache.size).toBe(0);
});
