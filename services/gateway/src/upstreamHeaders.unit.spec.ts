import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import { parseUpstreamHeaders } from "./upstreamHeaders.js";

const reachable = new Map([
  ["up-a", new Set(["authorization"])],
  ["up-b", new Set(["authorization", "x-tenant"])],
]);
const parse = (value: unknown) => parseUpstreamHeaders(typeof value === "string" ? value : JSON.stringify(value), reachable, "vs");
const failure = (value: unknown) => {
  try {
    parse(value);
  } catch (error) {
    if (error instanceof ManifoldError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
};
const SECRET = "s3cr3t-value";

describe("X-Manifold-Upstream-Headers at the edge", () => {
  test("each reachable upstream gets its own allowed headers", () => {
    expect(parse({ "up-a": { Authorization: `Bearer ${SECRET}` }, "up-b": { "X-Tenant": "t1" } })).toEqual(
      new Map([
        ["up-a", { Authorization: `Bearer ${SECRET}` }],
        ["up-b", { "X-Tenant": "t1" }],
      ]),
    );
    expect(parseUpstreamHeaders(undefined, reachable, "vs")).toBeUndefined();
  });

  test("an upstream that exists elsewhere and one that does not exist get the same answer", () => {
    const elsewhere = failure({ "up-hidden": { Authorization: "x" } });
    const missing = failure({ "up-ghost": { Authorization: "x" } });
    expect(elsewhere.message.replace("up-hidden", "X")).toBe(missing.message.replace("up-ghost", "X"));
    expect(elsewhere.code).toBe("invalid_upstream_headers");
    expect(missing.message).not.toContain("exist");
  });

  test.each([
    ["NUL", `Bearer ${SECRET}\u0000`],
    ["CR/LF", `Bearer ${SECRET}\r\nX-Injected: 1`],
    ["LF", `${SECRET}\n`],
    ["another control character", `${SECRET}\u0007`],
    ["a character beyond one byte", `${SECRET}€`],
    ["too long", SECRET + "x".repeat(8192)],
    ["not a string", 42],
  ])("a value with %s is invalid params naming upstream and header, never the value", (_what, value) => {
    const error = failure({ "up-b": { "X-Tenant": value } });
    expect(error.code).toBe("invalid_upstream_headers");
    expect(error.data).toEqual({ upstream: "up-b", header: "X-Tenant" });
    expect(error.message).toContain("'X-Tenant'");
    expect(error.message).toContain("'up-b'");
    expect(JSON.stringify(error)).not.toContain(SECRET);
  });

  test.each([
    ["a header name with a space", { "up-a": { "Bad Name": "v" } }],
    ["a header name with CR/LF", { "up-a": { "A\r\nB": "v" } }],
    ["an empty header name", { "up-a": { "": "v" } }],
    ["a header name too long", { "up-a": { ["X".repeat(65)]: "v" } }],
    ["too many headers", { "up-b": Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`X-H${i}`, "v"])) }],
    ["too many upstreams", Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`up-${i}`, {}]))],
    ["a header the upstream does not allow", { "up-a": { "X-Tenant": "t" } }],
    ["an entry that is not an object", { "up-a": "Bearer x" }],
    ["invalid JSON", "{nope"],
    ["not an object", "[1]"],
  ])("%s is refused as invalid params", (_what, value) => {
    const error = failure(value);
    expect(error.code).toBe("invalid_upstream_headers");
    expect(error.message).not.toContain("\r");
  });
});
