import { expect, test } from "vitest";
import { retryAfterOf } from "./errors.js";

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
