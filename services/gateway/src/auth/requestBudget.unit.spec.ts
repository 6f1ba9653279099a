import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { FAST_COST, RequestBudget, SDK_MESSAGE_COST, sdkCost, widthCost } from "./requestBudget.js";

const alice = { id: "consumer:alice#1", consumer: "alice", groups: [] };
const bob = { id: "consumer:bob#2", consumer: "bob", groups: [] };
const refusal = (fn: () => void) => {
  try {
    fn();
  } catch (error) {
    return error instanceof ManifoldError ? error.code : "other";
  }
  return undefined;
};

describe("what a request costs when an SDK serves it", () => {
  test("10 a message, a batch's each, and 10 for a GET or DELETE (the fast path's answers cost 1)", () => {
    expect(FAST_COST).toBe(1);
    expect(sdkCost({ jsonrpc: "2.0", method: "notifications/cancelled" })).toBe(SDK_MESSAGE_COST);
    expect(sdkCost({ jsonrpc: "2.0", id: 1, method: "tools/list" })).toBe(SDK_MESSAGE_COST);
    expect(sdkCost([{ jsonrpc: "2.0", id: 1, method: "ping" }, { jsonrpc: "2.0", id: 2, method: "tools/call" }, { jsonrpc: "2.0", id: 3, result: {} }])).toBe(3 * SDK_MESSAGE_COST);
    expect(sdkCost(undefined)).toBe(SDK_MESSAGE_COST);
  });

  test("attack: a listen stream's resource subscriptions each cost what a call does (each is an upstream request)", () => {
    const listen = (uris: unknown) => ({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { notifications: { resourceSubscriptions: uris } } });
    // Before: 10, for up to 100 upstream subscriptions: ~10,000 upstream requests a second for one caller.
    expect(sdkCost(listen(Array.from({ length: 100 }, (_, i) => `docs+doc://${i}`)))).toBe(SDK_MESSAGE_COST + 100 * FAST_COST);
    expect(sdkCost(listen(["docs+doc://a"]))).toBe(SDK_MESSAGE_COST + FAST_COST);
    // More than a stream follows is refused as too many, not as too dear.
    expect(sdkCost(listen(Array.from({ length: 5_000 }, () => "x")))).toBe(SDK_MESSAGE_COST + 100 * FAST_COST);
    expect(sdkCost(listen("not a list"))).toBe(SDK_MESSAGE_COST);
    expect(sdkCost({ jsonrpc: "2.0", id: 1, method: "resources/read", params: { notifications: { resourceSubscriptions: ["x"] } } })).toBe(SDK_MESSAGE_COST);
  });
});

describe("what a wide or large body costs beyond its messages", () => {
  test("attack: a body of 10,000 keys costs about a second's budget (before: 10 units, ~40–60 ms of the event loop)", () => {
    // Ordinary bodies (a 2026-07-28 envelope's keys, a few KiB) pay nothing more.
    expect(widthCost(40, 4_000)).toBe(0);
    expect(widthCost(100, 16_384)).toBe(0);
    expect(widthCost(10_000, 100_000)).toBe(990 + 20);
    // A long string costs by its length: a 1 MiB argument 252 units.
    expect(widthCost(8, 1_048_576)).toBe(252);
  });

  test("is capped at half a second's worth, so that a body within its bounds still fits with its lane's charge", () => {
    const budget = new RequestBudget(1_000, () => 0);
    budget.takeWidth(alice, widthCost(10_000, 100_000));
    expect(refusal(() => budget.take(alice, SDK_MESSAGE_COST))).toBeUndefined();
    expect(refusal(() => budget.takeWidth(alice, widthCost(10_000, 100_000)))).toBe("rate_limited");
    // With the smallest budget a caller may have too.
    const small = new RequestBudget(100, () => 0);
    expect(refusal(() => small.takeWidth(alice, 5_000))).toBeUndefined();
    expect(refusal(() => small.take(alice, SDK_MESSAGE_COST))).toBeUndefined();
  });
});

describe("a caller's budget", () => {
  test("a second's worth, refilled as time passes, each caller its own", () => {
    let now = 0;
    const budget = new RequestBudget(100, () => now);
    for (let i = 0; i < 100; i++) budget.take(alice, 1);
    expect(refusal(() => budget.take(alice, 1))).toBe("rate_limited");
    // Another caller is not affected.
    expect(refusal(() => budget.take(bob, 100))).toBeUndefined();
    now += 100; // a tenth of a second: ten units back
    for (let i = 0; i < 10; i++) budget.take(alice, 1);
    expect(refusal(() => budget.take(alice, 1))).toBe("rate_limited");
    // Idle for long, it holds a second's worth, no more.
    now += 60_000;
    expect(refusal(() => budget.take(alice, 100))).toBeUndefined();
    expect(refusal(() => budget.take(alice, 1))).toBe("rate_limited");
  });

  test("a request that could never fit is refused as such, not to be retried", () => {
    const budget = new RequestBudget(50, () => 0);
    expect(refusal(() => budget.take(alice, 51))).toBe("invalid_request");
  });

  test("the refusal says when to retry", () => {
    const budget = new RequestBudget(1, () => 0);
    budget.take(alice, 1);
    try {
      budget.take(alice, 1);
      expect.unreachable();
    } catch (error) {
      expect((error as ManifoldError).data).toEqual({ retryAfterSeconds: 1 });
      expect((error as ManifoldError).message).toContain("consumer 'alice'");
    }
  });

  test("forgetting the buckets of many callers never gives a drained one a fresh budget", () => {
    const budget = new RequestBudget(10, () => 0);
    budget.take(alice, 10);
    // 10,000 other callers, each drained too: the next one makes the budget forget what it can.
    for (let i = 0; i < 10_000; i++) budget.take({ id: `c${i}`, groups: [] }, 10);
    budget.take({ id: "late", groups: [] }, 1);
    expect(refusal(() => budget.take(alice, 1))).toBe("rate_limited");
    expect(refusal(() => budget.take({ id: "c0", groups: [] }, 1))).toBe("rate_limited");
  });

  test("callers whose buckets are full again are forgotten, at most once a second", () => {
    let now = 0;
    const budget = new RequestBudget(10, () => now);
    for (let i = 0; i < 10_000; i++) budget.take({ id: `c${i}`, groups: [] }, 10);
    now += 1_000;
    // Every earlier bucket is full again: the scan drops them, and the callers start afresh either way.
    budget.take({ id: "late", groups: [] }, 10);
    expect(refusal(() => budget.take({ id: "late", groups: [] }, 1))).toBe("rate_limited");
    expect(refusal(() => budget.take({ id: "c1", groups: [] }, 10))).toBeUndefined();
  });
});
