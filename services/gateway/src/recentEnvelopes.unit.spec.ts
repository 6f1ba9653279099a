import { describe, expect, test } from "vitest";
import { forgetEnvelopes, recentEnvelope, rememberEnvelope, sameJson } from "./recentEnvelopes.js";

describe("sameJson: two parsed values written as the same JSON text", () => {
  const cases: [unknown, unknown][] = [
    [{ name: "a", version: "1" }, { name: "a", version: "1" }],
    [{ name: "a", version: "1" }, { version: "1", name: "a" }],
    [{ name: "a" }, { name: "a", version: "1" }],
    [{ a: [1, 2, { b: null }] }, { a: [1, 2, { b: null }] }],
    [{ a: [1, 2, { b: null }] }, { a: [1, 2, { b: false }] }],
    [{ a: [1, 2] }, { a: [1, 2, 3] }],
    [{ a: [] }, { a: {} }],
    [{ "1": "x", b: "y" }, { b: "y", "1": "x" }],
    [null, {}],
    ["1", 1],
    [0, -0],
  ];
  test.each(cases)("%j against %j: as their JSON text says", (a, b) => {
    expect(sameJson(a, b)).toBe(JSON.stringify(a) === JSON.stringify(b));
  });

  test("attack: a value nested 100,000 deep is compared without recursion, and found unequal past the bound", () => {
    let a: unknown = {};
    for (let i = 0; i < 100_000; i++) a = { a };
    expect(sameJson(a, a)).toBe(true);
    expect(sameJson(a, JSON.parse(JSON.stringify({ a: { a: { a: 1 } } })))).toBe(false);
    const wide = Array.from({ length: 10_000 }, (_, i) => i);
    expect(sameJson(wide, [...wide])).toBe(false);
  });
});

describe("the recent envelopes", () => {
  test("match only an envelope whose text was remembered, and keep at most eight", () => {
    forgetEnvelopes();
    const info = { name: "agent", version: "1.0.0" };
    rememberEnvelope(JSON.stringify([info, {}, null]));
    expect(recentEnvelope({ name: "agent", version: "1.0.0" }, {}, undefined)).toBe(true);
    expect(recentEnvelope({ name: "agent", version: "1.0.1" }, {}, undefined)).toBe(false);
    expect(recentEnvelope({ version: "1.0.0", name: "agent" }, {}, undefined)).toBe(false);
    expect(recentEnvelope(info, { sampling: {} }, undefined)).toBe(false);
    expect(recentEnvelope(info, {}, "debug")).toBe(false);
    for (let i = 0; i < 8; i++) rememberEnvelope(JSON.stringify([{ name: `other${i}` }, {}, null]));
    expect(recentEnvelope(info, {}, undefined)).toBe(false);
    // Found again by its key: only into a free place, so eight others are not pushed out.
    rememberEnvelope(JSON.stringify([info, {}, null]), true);
    expect(recentEnvelope(info, {}, undefined)).toBe(false);
    forgetEnvelopes();
  });
});
