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
  test("walks 100,000 levels without overflowing the stack", () => {
    let value: unknown = { token: "t" };
    for (let i = 0; i < 100_000; i++) value = i % 2 ? { d: value } : [value];
    let copy = redactFields(value, ["token"]);
    for (let i = 0; i < 100_000; i++) copy = (copy as { d: unknown }).d ?? (copy as unknown[])[0];
    expect(copy).toEqual({ token: REDACTED });
  });
  test("an own __proto__ key stays a key and changes no prototype", () => {
    const value = JSON.parse('{"__proto__":{"polluted":true},"token":"t"}') as object;
    const copy = redactFields(value, ["token"]) as Record<string, unknown>;
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype);
    expect(Object.keys(copy)).toEqual(["__proto__", "token"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
