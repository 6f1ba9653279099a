import { describe, expect, test } from "vitest";
import { jsonTextTooDeep, jsonValueTooDeep } from "./boundedJson.js";

const nestedText = (depth: number) => "[".repeat(depth) + "]".repeat(depth);

describe("bounded JSON depth", () => {
  test.each([
    ["flat", '{"a":1,"b":[1,2]}', 2, false],
    ["exactly at the limit", nestedText(3), 3, false],
    ["one past the limit", nestedText(4), 3, true],
    ["brackets inside strings do not count", '{"a":"[[[[[[{{{{{"}', 1, false],
    ["escaped quotes do not end a string", '{"a":"\\"[[[[[[[[","b":1}', 1, false],
    ["an escaped backslash before a quote ends the string", '{"a":"\\\\","b":[[[[1]]]]}', 4, true],
    ["objects and arrays both count", '{"a":[{"b":[{}]}]}', 4, true],
  ])("%s", (_what, text, max, expected) => {
    expect(jsonTextTooDeep(text, max)).toBe(expected);
    expect(jsonValueTooDeep(JSON.parse(text), max)).toBe(expected);
  });

  test("200,000 levels are measured without recursion", () => {
    const text = nestedText(200_000);
    expect(jsonTextTooDeep(text, 64)).toBe(true);
    expect(jsonValueTooDeep(JSON.parse(text), 64)).toBe(true);
    expect(jsonValueTooDeep(JSON.parse(text), 2_000_000)).toBe(false);
  });

  test("costs well under a microsecond per typical small tools/call body", () => {
    const body = JSON.stringify({ jsonrpc: "2.0", id: 42, method: "tools/call", params: { name: "echo_abc123", arguments: { message: "hello world", n: 3, tags: ["a", "b"] } } });
    const runs = 200_000;
    const started = performance.now();
    for (let i = 0; i < runs; i++) jsonTextTooDeep(body, 64);
    const microseconds = ((performance.now() - started) * 1000) / runs;
    expect(microseconds).toBeLessThan(5);
  });
});
