import { RELATED_TASK_META_KEY, isJSONRPCRequest } from "@modelcontextprotocol/sdk/types.js";
import { describe, expect, test } from "vitest";
import { isLegacyRequest } from "./legacyRequest.js";

const RELATED = RELATED_TASK_META_KEY;
const base = { jsonrpc: "2.0", id: 1, method: "tools/call" };
// The fast path answers what this says yes to: it must never say yes where the SDK's schema says no.
const cases: [string, unknown][] = [
  ["a plain request", base],
  ["a string id", { ...base, id: "a" }],
  ["id 0 and a negative id", { ...base, id: -7 }],
  ["a fractional id", { ...base, id: 1.5 }],
  ["an id past the safe integers", { ...base, id: 2 ** 53 }],
  ["a null id", { ...base, id: null }],
  ["no id (a notification)", { jsonrpc: "2.0", method: "notifications/initialized" }],
  ["jsonrpc 1.0", { ...base, jsonrpc: "1.0" }],
  ["no jsonrpc", { id: 1, method: "x" }],
  ["a method that is not a string", { ...base, method: 3 }],
  ["a member too many", { ...base, extra: true }],
  ["a result member", { ...base, result: {} }],
  ["params of null", { ...base, params: null }],
  ["params an array", { ...base, params: [1] }],
  ["params a string", { ...base, params: "x" }],
  ["params with any members", { ...base, params: { name: "t", arguments: { a: 1 }, other: [1, 2] } }],
  ["a _meta of null", { ...base, params: { _meta: null } }],
  ["a _meta array", { ...base, params: { _meta: [] } }],
  ["a _meta with any members", { ...base, params: { _meta: { "x/y": 1, progressToken: "p" } } }],
  ["an integer progress token", { ...base, params: { _meta: { progressToken: 4 } } }],
  ["a fractional progress token", { ...base, params: { _meta: { progressToken: 4.5 } } }],
  ["a progress token of null", { ...base, params: { _meta: { progressToken: null } } }],
  ["a progress token object", { ...base, params: { _meta: { progressToken: {} } } }],
  ["a related task", { ...base, params: { _meta: { [RELATED]: { taskId: "t", more: 1 } } } }],
  ["a related task without its id", { ...base, params: { _meta: { [RELATED]: {} } } }],
  ["a related task id that is a number", { ...base, params: { _meta: { [RELATED]: { taskId: 1 } } } }],
  ["a related task of null", { ...base, params: { _meta: { [RELATED]: null } } }],
  ["an array", [base]],
  ["null", null],
  ["a string", "x"],
  ["a number", 1],
  ["an own __proto__ member (JSON.parse keeps it)", JSON.parse('{"jsonrpc":"2.0","id":1,"method":"m","__proto__":{}}')],
  ["an inherited enumerable member", Object.assign(Object.create({ extra: 1 }), base)],
];

describe("isLegacyRequest gives the 1.x SDK's isJSONRPCRequest verdict", () => {
  test.each(cases)("%s", (_, message) => {
    expect(isLegacyRequest(message)).toBe(isJSONRPCRequest(message));
  });

  test("on generated messages, each member drawn from values of every JSON type", () => {
    // A small deterministic generator (no seed to keep): every combination of these values.
    const values: unknown[] = [undefined, null, 0, 1, -1, 1.5, 2 ** 60, "", "2.0", "s", true, [], [1], {}, { taskId: "t" }, { taskId: 2 }];
    // 36,864 messages, each judged by the SDK's zod schema too: about 3 s alone, 5 s and more under load.
    let checked = 0;
    const mismatches: string[] = [];
    for (const jsonrpc of ["2.0", "2", undefined]) {
      for (const id of values) {
        for (const method of ["m", 1, undefined]) {
          for (const token of values) {
            for (const related of values) {
              const message: Record<string, unknown> = { jsonrpc, id, method, params: { _meta: { progressToken: token, [RELATED]: related } } };
              for (const key of Object.keys(message)) if (message[key] === undefined) delete message[key];
              if (isLegacyRequest(message) !== isJSONRPCRequest(message)) mismatches.push(JSON.stringify(message));
              checked++;
            }
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(checked).toBe(3 * values.length * 3 * values.length * values.length);
  }, 60_000);
});
