import { describe, expect, test } from "vitest";
import { CircuitBreaker } from "./circuitBreaker.js";

describe("circuit breaker", () => {
  test("opens after the threshold of consecutive failures and fails fast during the cooldown", () => {
    const breaker = new CircuitBreaker(3, 1_000);
    breaker.failure(0, "refused");
    breaker.failure(1, "refused");
    expect(breaker.state).toBe("closed");
    expect(breaker.allow(2)).toBe(true);
    breaker.failure(2, "refused");
    expect(breaker.state).toBe("open");
    expect(breaker.allow(500)).toBe(false);
    expect(breaker.lastReason).toBe("refused");
  });

  test("a success resets the count of consecutive failures", () => {
    const breaker = new CircuitBreaker(2, 1_000);
    breaker.failure(0, "x");
    breaker.success();
    breaker.failure(1, "x");
    expect(breaker.state).toBe("closed");
  });

  test("after the cooldown lets exactly one probe through; its success closes the circuit", () => {
    const breaker = new CircuitBreaker(1, 1_000);
    breaker.failure(0, "x");
    expect(breaker.allow(1_000)).toBe(true);
    expect(breaker.state).toBe("half-open");
    expect(breaker.allow(1_001)).toBe(false);
    breaker.success();
    expect(breaker.state).toBe("closed");
    expect(breaker.allow(1_002)).toBe(true);
  });

  test("a failed probe re-opens the circuit for another cooldown", () => {
    const breaker = new CircuitBreaker(5, 1_000);
    for (let i = 0; i < 5; i++) breaker.failure(0, "x");
    expect(breaker.allow(1_000)).toBe(true);
    breaker.failure(1_000, "still down");
    expect(breaker.state).toBe("open");
    expect(breaker.allow(1_500)).toBe(false);
    expect(breaker.allow(2_000)).toBe(true);
  });

  test("a probe that ends without a verdict lets the next call probe, so the circuit is never stuck half-open", () => {
    const breaker = new CircuitBreaker(1, 1_000);
    breaker.failure(0, "x");
    expect(breaker.allow(1_000)).toBe(true);
    expect(breaker.allow(1_001)).toBe(false);
    breaker.release();
    expect(breaker.state).toBe("half-open");
    expect(breaker.allow(1_002)).toBe(true);
    breaker.success();
    breaker.release();
    expect(breaker.state).toBe("closed");
  });
  test("a failure that opens the circuit with a Retry-After holds it open that long, not the cooldown, and says how long is left", () => {
    const breaker = new CircuitBreaker(2, 5_000);
    // A Retry-After on a failure that does not open the circuit changes nothing.
    breaker.failure(0, "503", 60_000);
    breaker.failure(10, "503", 2_000);
    expect(breaker.state).toBe("open");
    expect(breaker.retryInMs(510)).toBe(1_500);
    expect(breaker.allow(2_009)).toBe(false);
    expect(breaker.allow(2_010)).toBe(true);
    expect(breaker.retryInMs(2_010)).toBe(0);
    // A probe refused again with a longer Retry-After holds it open for that; without one, for the cooldown.
    breaker.failure(2_020, "503", 30_000);
    expect([breaker.allow(32_019), breaker.allow(32_020)]).toEqual([false, true]);
    breaker.failure(32_030, "503");
    expect([breaker.allow(37_029), breaker.allow(37_030)]).toEqual([false, true]);
    breaker.success();
    expect(breaker.retryInMs(37_031)).toBe(0);
  });

  test("a reconnection lets an open circuit's probe through at once, unless the upstream asked for a Retry-After", () => {
    const breaker = new CircuitBreaker(2, 30_000);
    breaker.failure(0, "not connected");
    breaker.failure(1, "not connected");
    expect(breaker.allow(2)).toBe(false);
    breaker.reconnected(500);
    expect(breaker.allow(600)).toBe(true);
    expect(breaker.state).toBe("half-open");
    expect(breaker.allow(601)).toBe(false);
    breaker.success();

    breaker.failure(1_000, "503");
    breaker.failure(1_001, "503", 60_000);
    breaker.reconnected(2_000);
    expect(breaker.allow(2_100)).toBe(false);
    expect(breaker.retryInMs(2_100)).toBe(58_901);
  });
});
