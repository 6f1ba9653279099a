import { expect, test } from "vitest";
import { retryAfterOf, withRetryHint } from "./errors.js";

test.each([
  [{ retryAfterSeconds: 1 }, "1"],
  [{ retryAfterSeconds: 2, retryAfterMs: 9_000 }, "2"],
  [{ retryAfterMs: 1 }, "1"],
  [{ retryAfterMs: 1_000 }, "1"],
  [{ retryAfterMs: 1_001 }, "2"],
  [{ retryAfterMs: 0 }, "0"],
  [{ retryAfterMs: "5000" }, undefined],
  [{ reason: "no_connector" }, undefined],
  [undefined, undefined],
])("retryAfterOf(%j) is %s", (data, expected) => {
  expect(retryAfterOf(data)).toBe(expected);
});

test.each([
  ["bus_unavailable", undefined, { retryAfterMs: 1_000 }],
  ["bus_unavailable", { reason: "bus_unresponsive" }, { reason: "bus_unresponsive", retryAfterMs: 1_000 }],
  ["bus_unavailable", { retryAfterSeconds: 3 }, { retryAfterSeconds: 3 }],
  ["upstream_unavailable", { reason: "no_connector" }, { reason: "no_connector" }],
  ["at_capacity", undefined, undefined],
] as const)("withRetryHint(%s, %j) is %j", (code, data, expected) => {
  expect(withRetryHint(code, data)).toEqual(expected);
});
