import { expect, test } from "vitest";
import { toolFromHeader, toolHeaderValue } from "./subjects.js";

test("a tool name survives the bus header as it is, whatever an upstream named it", () => {
  const names = ["echo", "look\r\nup", "line\nbreak", " padded ", "padded", '"quoted"', '"', "", "\u00a0nbsp", "tab\t", "ünïcode", "a\u2028b"];
  const carried = names.map((name) => {
    const value = toolHeaderValue(name);
    expect(value).not.toMatch(/[\r\n]/);
    // What the header keeps of it: nats-style values lose their surrounding spaces.
    return toolFromHeader(value.trim());
  });
  expect(carried).toEqual(names);
  // The plain ones travel unchanged (no cost on the common path, readable on the bus).
  expect(toolHeaderValue("echo")).toBe("echo");
  expect(toolHeaderValue("ünïcode")).toBe("ünïcode");
});

test("a header that is not the encoding's JSON is read as it is", () => {
  expect(toolFromHeader('"unterminated')).toBe('"unterminated');
  expect(toolFromHeader("plain")).toBe("plain");
});
