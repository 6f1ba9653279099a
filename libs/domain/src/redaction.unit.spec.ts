import { describe, expect, test } from "vitest";
import { JsonLimits } from "@manifold/contracts";
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

describe("redacting fields inside JSON text", () => {
  test("a named field inside a string holding JSON is redacted there too, at any depth of documents", () => {
    const inner = JSON.stringify({ password: "p", keep: 1 });
    const value = { content: [{ type: "text", text: JSON.stringify({ token: "t", user: "u" }) }], note: `  ${JSON.stringify([{ body: inner }])}` };
    const copy = redactFields(value, ["token", "password"]) as { content: { text: string }[]; note: string };
    expect(JSON.parse(copy.content[0]!.text)).toEqual({ token: REDACTED, user: "u" });
    expect(JSON.parse(JSON.parse(copy.note)[0].body)).toEqual({ password: REDACTED, keep: 1 });
  });
  test("text without JSON, or without a named field, is kept as it was, byte for byte", () => {
    const spaced = '{ "user": "u" }';
    const value = { a: spaced, b: "{not json", c: "[1, 2]", d: "plain token text" };
    expect(redactFields(value, ["token"])).toEqual(value);
  });
  test("a document nested past the result depth is left as it is, and nothing throws", () => {
    const deep = "[".repeat(JsonLimits.resultDepth + 1) + '{"token":"t"}' + "]".repeat(JsonLimits.resultDepth + 1);
    expect(redactFields({ text: deep }, ["token"])).toEqual({ text: deep });
  });
});
