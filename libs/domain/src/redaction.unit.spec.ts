import { describe, expect, test } from "vitest";
import { REDACTED, redactFields } from "./redaction.js";

describe("redacting recorded values", () => {
  test("replaces named fields at any depth, in objects and arrays, ignoring case", () => {
    const value = { user: "ann", Password: "p", nested: { token: "t", keep: 1 }, list: [{ token: "u" }, 2] };
    expect(redactFields(value, ["password", "TOKEN"])).toEqual({
      user: "ann",
      Password: REDACTED,
      nested: { token: REDACTED, keep: 1 },
      list: [{ token: REDACTED }, 2],
    });
  });
  test("leaves values untouched without fields, and never changes the original", () => {
    const value = { secret: "s" };
    expect(redactFields(value, [])).toBe(value);
    redactFields(value, ["secret"]);
    expect(value.secret).toBe("s");
  });
});
