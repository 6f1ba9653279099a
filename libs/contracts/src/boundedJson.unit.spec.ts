import { describe, expect, test } from "vitest";
import { AdminBodyLimits, AgentBodyLimits, JSON_TOO_DEEP, JSON_TOO_WIDE, jsonTextTooDeep, jsonValueTooDeep, measureBody, scanJsonText } from "./boundedJson.js";
import { ManifoldError } from "./errors.js";

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

  test.each([
    ["an object member is one key", '{"a":1,"b":{"c":[{"d":2}]}}', 4],
    ["colons inside strings (keys or values) are not keys", '{"a:b":"x:y:z","c":"\\":"}', 2],
    ["escaped quotes do not end a string", '{"a":"\\":::","b":1}', 2],
    ["arrays hold no keys", "[1,2,[3,4],\"a:b\"]", 0],
    ["duplicate keys each count", '{"a":1,"a":2,"a":3}', 3],
  ])("keys: %s", (_what, text, keys) => {
    expect(scanJsonText(text, 64)).toBe(keys);
  });

  test("attack: keys are bounded in the same pass as nesting, whichever limit is crossed first", () => {
    const wide = (count: number) => `{${Array.from({ length: count }, (_, i) => `"k${i}":0`).join(",")}}`;
    expect(scanJsonText(wide(10), 64, 10)).toBe(10);
    expect(scanJsonText(wide(11), 64, 10)).toBe(JSON_TOO_WIDE);
    expect(scanJsonText(`[[[${wide(11)}]]]`, 2, 10)).toBe(JSON_TOO_DEEP);
    // ~1 MB, 90,000 keys (a ping's params): refused as too wide, naming the limit.
    const refused = measureBody(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: JSON.parse(wide(90_000)) }), AgentBodyLimits);
    expect(refused).toBeInstanceOf(ManifoldError);
    expect(refused).toMatchObject({ code: "json_too_wide", data: { maxKeys: 10_000 } });
    expect(measureBody("[".repeat(65) + "]".repeat(65), AgentBodyLimits)).toMatchObject({ code: "json_too_deep", data: { maxDepth: 64 } });
    // Admin bodies (a catalog's import) may hold more.
    expect(measureBody(wide(90_000), AdminBodyLimits)).toBe(90_000);
  });
});
