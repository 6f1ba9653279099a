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

describe("execution is pinned without the specification's default", () => {
  const tool = { name: "t", inputSchema: { type: "object" as const } };
  test("taskSupport 'forbidden' (the default) pins, and hashes, as if absent", () => {
    expect(pinDefinition({ ...tool, execution: { taskSupport: "forbidden" } })).toEqual(pinDefinition(tool));
    expect(definitionHash(pinDefinition({ ...tool, execution: { taskSupport: "forbidden" } }))).toBe(definitionHash(pinDefinition(tool)));
  });
  test("any other task support, or another execution field, is kept", () => {
    expect(pinDefinition({ ...tool, execution: { taskSupport: "required" } }).execution).toEqual({ taskSupport: "required" });
    expect(pinDefinition({ ...tool, execution: { taskSupport: "forbidden", other: 1 } }).execution).toEqual({ other: 1 });
  });
});
