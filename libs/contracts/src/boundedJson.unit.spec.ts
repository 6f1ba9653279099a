import { describe, expect, test } from "vitest";
import { AdminBodyLimits, AgentBodyLimits, JSON_NUMBER_OUT_OF_RANGE, JSON_TOO_DEEP, JSON_TOO_WIDE, holdsNonFiniteNumber, jsonTextTooDeep, jsonValueTooDeep, measureBody, nonFiniteNumberPath, scanJsonText } from "./boundedJson.js";
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

  test.each([
    ["1e400", true],
    ["-1e400", true],
    ["1e309", true],
    ["1E+309", true],
    ["1" + "0".repeat(309), true],
    ["-" + "9".repeat(309), true],
    ["1.7976931348623157e308", false],
    ["1.7976931348623159e308", true],
    ["1e-400", false],
    ["12345678901234567890", false],
    ["9".repeat(308), false],
    ["-0.5e-3", false],
  ])("attack: %s in an object member, an array and at the top is out of range: %s", (number, outOfRange) => {
    for (const text of [`{"a":{"b":[0,${number}]},"c":true}`, `[${number}]`, number, ` ${number} `]) {
      expect(Math.abs(Number(number)) === Infinity, "as JSON.parse reads it").toBe(outOfRange);
      expect(scanJsonText(text, 64, Infinity, true), text).toBe(outOfRange ? JSON_NUMBER_OUT_OF_RANGE : scanJsonText(text, 64));
    }
    // Not looked at unless asked (an upstream's answer measured for its nesting only).
    expect(scanJsonText(`{"a":${number}}`, 64)).toBe(1);
  });

  test("numbers in strings, keys and literals are not numbers; limits still hold past an out-of-range number", () => {
    expect(scanJsonText('{"1e400":"1e400","t":true,"f":false,"n":null}', 64, Infinity, true)).toBe(4);
    expect(scanJsonText(`[1e400,${"[".repeat(65)}${"]".repeat(65)}]`, 64, Infinity, true)).toBe(JSON_TOO_DEEP);
    expect(scanJsonText('{"a":1e400,"b":1,"c":2}', 64, 2, true)).toBe(JSON_TOO_WIDE);
  });

  test("attack: a body holding 1e400 is refused naming the member's JSON Pointer, never the number", () => {
    const refused = measureBody('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a/b~":[1,{"x":-1e400}]}}}', AgentBodyLimits);
    expect(refused).toBeInstanceOf(ManifoldError);
    expect(refused).toMatchObject({ code: "json_number_out_of_range", data: { path: "/params/arguments/a~1b~0/1/x" } });
    expect((refused as ManifoldError).message).not.toContain("1e400");
    // Text that is not JSON is left to the parser.
    expect(measureBody('{"a":1e400', AgentBodyLimits)).toBe(0);
    expect(nonFiniteNumberPath({ a: [1, 2], b: { c: Infinity }, d: -Infinity })).toBe("/b/c");
    expect(nonFiniteNumberPath(Infinity)).toBe("");
    expect(nonFiniteNumberPath({ a: [1e308, "1e400"] })).toBeUndefined();
  });

  test("holdsNonFiniteNumber finds what nonFiniteNumberPath finds, at any depth, without recursion", () => {
    for (const value of [{ a: [1, 2], b: { c: Infinity } }, Infinity, -Infinity, [[[NaN]]], { x: [{ y: [-Infinity] }] }]) {
      expect(holdsNonFiniteNumber(value), JSON.stringify(value)).toBe(true);
      expect(nonFiniteNumberPath(value)).toBeDefined();
    }
    for (const value of [{ a: [1e308, "1e400", null, true] }, 1, "Infinity", null, [], {}]) expect(holdsNonFiniteNumber(value), JSON.stringify(value)).toBe(false);
    // 100,000 levels (JSON.parse reads them): no stack overflow.
    const deep = JSON.parse(`${"[".repeat(100_000)}1e400${"]".repeat(100_000)}`) as unknown;
    expect(holdsNonFiniteNumber(deep)).toBe(true);
  });
});
