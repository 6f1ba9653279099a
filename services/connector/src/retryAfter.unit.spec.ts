import { describe, expect, test } from "vitest";
import { MAX_RETRY_AFTER_MS, retryAfterMs } from "./retryAfter.js";

const NOW = Date.parse("Sun, 06 Nov 1994 08:49:37 GMT");

describe("an upstream's Retry-After", () => {
  test.each([
    ["0", 0],
    ["7", 7_000],
    [" 120 ", 120_000],
    ["300", 300_000],
    // Bounded: an upstream cannot hold its circuit open, or tell agents to wait, for longer.
    ["301", MAX_RETRY_AFTER_MS],
    ["9999999999", MAX_RETRY_AFTER_MS],
  ])("delta-seconds %j is %d ms", (header, ms) => {
    expect(retryAfterMs(header, NOW)).toBe(ms);
  });

  test.each([
    ["Sun, 06 Nov 1994 08:49:47 GMT", 10_000],
    ["Sunday, 06-Nov-94 08:49:47 GMT", 10_000],
    ["Sun Nov  6 08:49:47 1994", 10_000],
    // Past dates: retry now.
    ["Sun, 06 Nov 1994 08:49:00 GMT", 0],
    ["Mon, 07 Nov 1994 08:49:37 GMT", MAX_RETRY_AFTER_MS],
  ])("the HTTP-date %j is %d ms ahead", (header, ms) => {
    expect(retryAfterMs(header, NOW)).toBe(ms);
  });

  test.each([undefined, "", "-5", "1.5", "soon", "5 s", "1e3", "12345678901", "Sun, 06 Nov 1994 08:49:47 CET", "2026-12-05T00:00:00Z", `${"9".repeat(50)}`, ["5", "7"], 5])("ignores %j", (header) => {
    expect(retryAfterMs(header, NOW)).toBeUndefined();
  });
});
