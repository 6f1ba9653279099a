import { describe, expect, test } from "vitest";
import { definitionHash, pinDefinition } from "./hashing.js";

const tool = {
  name: "add",
  description: "Adds",
  inputSchema: { type: "object" as const, properties: { a: { type: "number" }, b: { type: "number" } } },
};

describe("definition hashes", () => {
  test("do not depend on key order", () => {
    const reordered = {
      inputSchema: { properties: { b: { type: "number" }, a: { type: "number" } }, type: "object" as const },
      description: "Adds",
      name: "add",
    };
    expect(definitionHash(pinDefinition(reordered))).toBe(definitionHash(pinDefinition(tool)));
  });

  test("change when any pinned field changes", () => {
    const base = definitionHash(pinDefinition(tool));
    expect(definitionHash(pinDefinition({ ...tool, description: "Adds two numbers" }))).not.toBe(base);
    expect(definitionHash(pinDefinition({ ...tool, title: "Add" }))).not.toBe(base);
    expect(definitionHash(pinDefinition({ ...tool, annotations: { readOnlyHint: true } }))).not.toBe(base);
    // Every field the specification defines on a tool is pinned (issue 14): icons, execution, _meta.
    expect(definitionHash(pinDefinition({ ...tool, icons: [] }))).not.toBe(base);
    expect(definitionHash(pinDefinition({ ...tool, execution: { taskSupport: "optional" } }))).not.toBe(base);
    expect(definitionHash(pinDefinition({ ...tool, _meta: { anything: 1 } }))).not.toBe(base);
  });

  test("ignore fields that are not pinned", () => {
    const withExtras = { ...tool, vendorExtension: { anything: 1 }, x: [] };
    expect(pinDefinition(withExtras)).toEqual(tool);
    expect(definitionHash(pinDefinition(withExtras))).toBe(definitionHash(pinDefinition(tool)));
  });

  test("are sha256 hex digests", () => {
    expect(definitionHash(pinDefinition(tool))).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
