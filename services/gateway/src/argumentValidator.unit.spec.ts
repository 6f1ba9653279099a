import { createLogger } from "@manifold/telemetry";
import { describe, expect, test } from "vitest";
import type { ManifoldError } from "@manifold/contracts";
import { ArgumentValidator, invalidArgumentsResult } from "./argumentValidator.js";

const warnings: string[] = [];
const logger = createLogger({ component: "test", level: "warn", destination: { write: (line: string) => void warnings.push(line) } });
const outcome = (validator: ArgumentValidator, schema: Record<string, unknown>, args: unknown, hash = JSON.stringify(schema)) => {
  try {
    validator.check(hash, schema, "t", args);
    return "ok";
  } catch (error) {
    return (error as Error).message;
  }
};

// A pinned schema comes from an upstream, its arguments from any agent granted the tool, and the
// check runs on the gateway's event loop, shared by every tenant. Before: `^(a+)+$` against 40 a's
// and a "!" backtracked for hours (this test timed out), and `uniqueItems` over 100,000 distinct
// untyped items compared every pair (5·10⁹ comparisons).
describe("argument checks cost linear time, whatever the schema and the arguments", () => {
  test("a backtracking pattern, in `pattern`, `patternProperties` and `propertyNames`, answers at once", { timeout: 5_000 }, () => {
    const validator = new ArgumentValidator(logger);
    const evil = `${"a".repeat(40)}!`;
    expect(outcome(validator, { type: "object", properties: { s: { type: "string", pattern: "^(a+)+$" } } }, { s: evil })).toMatch(/must match pattern/);
    expect(outcome(validator, { type: "object", properties: { s: { type: "string", pattern: "^(a+)+$" } } }, { s: "aaaa" })).toBe("ok");
    expect(outcome(validator, { type: "object", patternProperties: { "^(a|aa)+$": { type: "number" } } }, { [evil]: "x", aa: 1 })).toBe("ok");
    expect(outcome(validator, { type: "object", propertyNames: { pattern: "^(a+)+$" } }, { [evil]: 1 })).toMatch(/property name must be valid|must match pattern/);
  });

  test("patterns keep their Unicode meaning; one only a backtracking engine runs is logged and not enforced here", () => {
    const validator = new ArgumentValidator(logger);
    expect(outcome(validator, { properties: { s: { type: "string", pattern: "^\\p{L}{2}$" } } }, { s: "é😀" })).toMatch(/must match pattern/);
    expect(outcome(validator, { properties: { s: { type: "string", pattern: "^\\p{L}.$" } } }, { s: "é😀" })).toBe("ok");
    expect(outcome(validator, { properties: { s: { type: "string", pattern: "^[\\u0041-\\u005A]+\\u{1F600}\\\\u$" } } }, { s: "AB😀\\u" })).toBe("ok");
    expect(outcome(validator, { properties: { s: { type: "string", pattern: "^[\\u0041-\\u005A]+$" } } }, { s: "ab" })).toMatch(/must match pattern/);
    expect(outcome(validator, { properties: { s: { type: "string", pattern: "^(a)\\1$" } } }, { s: "ab" })).toBe("ok");
    expect(warnings.join("\n")).toMatch(/input schema does not compile; arguments are not validated/);
  });

  test("uniqueItems over 100,000 distinct items answers at once, and still finds a duplicate, by value", { timeout: 5_000 }, () => {
    const validator = new ArgumentValidator(logger);
    const schema = { type: "object", properties: { xs: { type: "array", uniqueItems: true } } };
    const distinct = Array.from({ length: 100_000 }, (_, i) => (i % 2 ? i : { n: i, m: [i] }));
    expect(outcome(validator, schema, { xs: distinct })).toBe("ok");
    expect(outcome(validator, schema, { xs: [...distinct, { m: [4], n: 4 }] })).toMatch(/\/xs must NOT have duplicate items/);
    expect(outcome(validator, schema, { xs: [1, 1.0] })).toMatch(/duplicate/);
    expect(outcome(validator, schema, { xs: [1, "1", [1], { a: 1 }, { a: "1" }] })).toBe("ok");
  });
});

// Compiling runs on the event loop every tenant shares, once per pin and replica, and Ajv's compile
// time grows with the schema (~0.1-0.5 ms a property here). Before: this 1,600-property schema held
// the loop ~1.5 s to compile, and its generated function then overflowed V8's stack on every call
// (the check threw RangeError); a ~1 MiB schema (20,000 properties) held it 4.3 s.
test("a schema too large to compile on the event loop is not compiled: logged once, not enforced, at once", { timeout: 5_000 }, () => {
  const validator = new ArgumentValidator(logger);
  const wide = (n: number) => ({ type: "object", properties: Object.fromEntries(Array.from({ length: n }, (_, i) => [`p${i}`, { type: "string" }])), required: ["p0"] });
  warnings.length = 0;
  for (const n of [1_600, 20_000]) {
    expect(outcome(validator, wide(n), { p0: 1 })).toBe("ok");
    expect(outcome(validator, wide(n), { p0: 1 })).toBe("ok");
  }
  expect(warnings.filter((w) => w.includes("too large to compile")).length).toBe(2);
  expect(warnings.join("\n")).toContain('"nodes":">512"');
  // Nested rather than wide counts alike; one within the bound is enforced.
  let deep: Record<string, unknown> = { type: "string" };
  for (let i = 0; i < 600; i++) deep = { type: "object", properties: { a: deep } };
  expect(outcome(validator, deep, { a: 1 })).toBe("ok");
  expect(outcome(validator, wide(200), { p0: 1 })).toMatch(/\/p0 must be string/);
});

// A problem's path holds the caller's own property names: before (helper-188), a 100,000-character
// key came back whole in the refusal, in its message and again in `data.errors`.
test("a refusal is bounded, whatever the names in the arguments", () => {
  const validator = new ArgumentValidator(logger);
  const schema = { type: "object", additionalProperties: { type: "number" } };
  let refusal: ManifoldError | undefined;
  try {
    validator.check("bounded", schema, "t", { [`k${"x".repeat(100_000)}`]: "not a number" });
  } catch (error) {
    refusal = error as ManifoldError;
  }
  expect(refusal?.code).toBe("invalid_arguments");
  expect(refusal!.message).toMatch(/^invalid arguments for tool 't': \/kx+… must be number$/);
  expect(JSON.stringify(refusal!.data).length).toBeLessThan(1_024);
  const result = JSON.parse(invalidArgumentsResult(refusal!)) as { content: { type: string; text: string }[]; isError: boolean };
  expect(result.isError).toBe(true);
  expect(result.content[0]!.text.length).toBeLessThan(1_024);
  expect(result.content[0]!.text).toContain('"keyword":"type"');
});

// A schema of few objects may still list many names: `dependentRequired` and `dependencies` hold
// them in one array (3 nodes, under the 512 bound), and Ajv built their check as one nested
// expression, in time quadratic in the names. Before (helper-197): 1,000 names (7 KB) held the
// event loop 2.0 s to compile, 10,000 (79 KB) 89 s and then overflowed the stack.
test("dependentRequired and dependencies listing 10,000 names compile and check at once, and are enforced", { timeout: 5_000 }, () => {
  const validator = new ArgumentValidator(logger);
  const names = Array.from({ length: 10_000 }, (_, i) => `p${i}`);
  const all = Object.fromEntries(names.map((n) => [n, 1]));
  for (const schema of [{ type: "object", dependentRequired: { a: names } }, { type: "object", dependencies: { a: names } }]) {
    expect(outcome(validator, schema, { a: 1, ...all })).toBe("ok");
    expect(outcome(validator, schema, { b: 1 })).toBe("ok");
    expect(outcome(validator, schema, { a: 1, p0: 1 })).toMatch(/^invalid arguments for tool 't': \/ must have property p1 when property a is present/);
  }
  // `dependencies`' other form, a schema, still applies.
  const both = { type: "object", dependencies: { a: ["b"], c: { required: ["d"] } } };
  expect(outcome(validator, both, { a: 1, b: 1, c: 1, d: 1 })).toBe("ok");
  expect(outcome(validator, both, { c: 1 })).toMatch(/must have required property 'd'/);
  expect(outcome(validator, { dependentRequired: { a: ["b"] } }, { a: 1 })).toMatch(/must have property b when property a is present/);
  expect(outcome(validator, { dependentRequired: { a: ["b"] } }, "not an object")).toBe("ok");
});

// An enum is the upstream's list, each call's value the agent's: Ajv compared the value with every
// allowed one on each call, on the event loop every tenant shares. Before (helper-197): 100,000
// values (a 1.4 MB schema, 3 nodes) cost ~1-4 ms a call, so 2,000 calls of a few bytes held it 2-8 s.
test("an enum of 100,000 values costs a call its value's size, not the list's, and is enforced by value", { timeout: 20_000 }, () => {
  const validator = new ArgumentValidator(logger);
  const schema = { type: "object", properties: { x: { enum: [...Array.from({ length: 100_000 }, (_, i) => `value-${i}`), 7, null, { a: [1, { b: 2 }] }] } } };
  const refused = () => expect(outcome(validator, schema, { x: "not listed" }, "big-enum")).toBe("invalid arguments for tool 't': /x must be equal to one of the allowed values");
  // Compiled by the first call (once per pinned schema), outside the calls measured: a busy worker's
  // compile is no call's cost. The 2,000 calls took 77 ms here, each refusal's message included; before, 2-8 s.
  refused();
  const started = performance.now();
  for (let i = 0; i < 2_000; i++) refused();
  expect(performance.now() - started).toBeLessThan(500);
  for (const listed of ["value-0", "value-99999", 7, 7.0, null, { a: [1, { b: 2 }] }]) expect(outcome(validator, schema, { x: listed }, "big-enum")).toBe("ok");
  for (const unlisted of ["7", 8, { a: [1, { b: 3 }] }, [null], false]) expect(outcome(validator, schema, { x: unlisted }, "big-enum")).toMatch(/must be equal to one of the allowed values/);
  // Key order is no difference, as in Ajv's deep equality.
  expect(outcome(validator, { enum: [{ a: 1, b: 2 }] }, { b: 2, a: 1 })).toBe("ok");
});

// A pattern is compiled to RE2's program when its schema is, on the event loop every tenant shares,
// in time that grows with its text. Before (helper-197): one `pattern` of 10,000 alternatives (59 KB)
// held the loop 1.9 s, 50,000 (339 KB) 5.5 s.
test("a pattern too long to compile on the event loop makes its schema not compiled: logged, not enforced, at once", { timeout: 5_000 }, () => {
  const validator = new ArgumentValidator(logger);
  const long = { type: "object", properties: { x: { type: "string", pattern: Array.from({ length: 50_000 }, (_, i) => `w${i}`).join("|") } } };
  warnings.length = 0;
  const started = performance.now();
  expect(outcome(validator, long, { x: "z" })).toBe("ok");
  expect(performance.now() - started).toBeLessThan(500);
  expect(warnings.join("\n")).toMatch(/input schema does not compile; arguments are not validated/);
  // So do many patterns, together past 2,048 characters; fewer are enforced.
  const pattern = (n: number) => Array.from({ length: 100 }, (_, i) => `w${n}x${i}`).join("|");
  const many = (count: number) => ({ type: "object", properties: Object.fromEntries(Array.from({ length: count }, (_, n) => [`x${n}`, { type: "string", pattern: pattern(n) }])) });
  expect(outcome(validator, many(200), { x0: "z" })).toBe("ok");
  expect(outcome(validator, many(2), { x0: "z" })).toMatch(/\/x0 must match pattern/);
  expect(outcome(validator, many(2), { x1: "w1x5" })).toBe("ok");
});
