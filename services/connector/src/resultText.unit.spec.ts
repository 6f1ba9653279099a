import { describe, expect, test } from "vitest";
import { resultTextOf } from "./resultText.js";

/** Answers whose result is taken as written: it must read as `JSON.parse` reads the answer's `result`. */
const TAKEN = [
  '{"jsonrpc":"2.0","id":1,"result":{"content":[]}}',
  ' \n{ "result" :\t{ "a" : [ 1 , -2.5e3 , true , null , "}]\\"" ] } , "id" : "x" }\r\n',
  // `result` nested elsewhere, or inside a string, is not the answer's.
  '{"id":{"result":{"no":1}},"note":"\\"result\\":{}","result":{"yes":[[],{}]}}',
  // Of two, JSON.parse keeps the last.
  '{"result":{"a":1},"jsonrpc":"2.0","result":{"b":"\\\\"},"id":2}',
  '{"jsonrpc":"2.0","id":3,"result":{"text":"line\\nnext\\ttab\\\\ \\"q\\" \\b\\f\\r é ✓"}}',
];
/** Answers left to `JSON.stringify`: no result, an escape JSON.stringify would not write (one could hide a credential from redaction), an escaped key. */
const LEFT = [
  '{"jsonrpc":"2.0","id":4,"error":{"code":1,"message":"m"}}',
  '{"jsonrpc":"2.0","id":5,"result":{"text":"\\u0073ecret"}}',
  '{"jsonrpc":"2.0","id":6,"result":{"a":1},"res\\u0075lt":{"b":2}}',
  '{"jsonrpc":"2.0","id":7,"result":{"a":"\\/"}}',
  "{}",
];

describe("resultTextOf", () => {
  test.each(TAKEN)("takes the result of %s as JSON.parse reads it", (answer) => {
    const text = resultTextOf(answer);
    expect(text).toBeDefined();
    expect(JSON.parse(text!)).toEqual((JSON.parse(answer) as { result: unknown }).result);
  });

  test("takes it as written: its spacing, its numbers, the escapes JSON.stringify writes", () => {
    expect(resultTextOf(TAKEN[1]!)).toBe('{ "a" : [ 1 , -2.5e3 , true , null , "}]\\"" ] }');
    expect(resultTextOf(TAKEN[2]!)).toBe('{"yes":[[],{}]}');
    expect(resultTextOf(TAKEN[3]!)).toBe('{"b":"\\\\"}');
  });

  test.each(LEFT)("leaves %s to JSON.stringify", (answer) => {
    expect(resultTextOf(answer)).toBeUndefined();
  });
});
