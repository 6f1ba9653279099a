import { describe, expect, test } from "vitest";
import { ErrorCode, jsonRpcCodeOf } from "./errors.js";

/** JSON-RPC's own codes, and the three MCP 2026-07-28 defines in its reserved sub-range. */
const SPEC_CODES = new Set([-32700, -32600, -32601, -32602, -32603, -32020, -32021, -32022]);
/** MCP 2026-07-28, basic/index.mdx "Error Codes": a spec code, or a code outside JSON-RPC's reserved -32768..-32000. */
const allowedIn2026 = (code: number) => SPEC_CODES.has(code) || code < -32768 || code > -32000;

describe("the JSON-RPC code of each error, per era", () => {
  test.each(Object.keys(ErrorCode) as ErrorCode[])("%s: 2025 agents keep their code; a 2026-07-28 agent gets one the revision allows", (code) => {
    expect(jsonRpcCodeOf(code, "legacy")).toBe(ErrorCode[code].jsonRpc);
    const modern = jsonRpcCodeOf(code, "modern");
    expect(allowedIn2026(modern), String(modern)).toBe(true);
    expect(modern).not.toBe(-32042);
    // A spec code keeps its meaning: only errors that are that condition get it.
    if (SPEC_CODES.has(modern) && modern !== ErrorCode[code].jsonRpc) expect([code, modern]).toEqual(["upstream_authorization_required", -32021]);
  });

  test("distinct 2025 codes stay distinct for 2026-07-28 agents", () => {
    const pairs = new Map<number, number>();
    for (const code of Object.keys(ErrorCode) as ErrorCode[]) {
      const modern = jsonRpcCodeOf(code, "modern");
      if (code === "upstream_authorization_required") continue;
      expect(pairs.get(modern) ?? ErrorCode[code].jsonRpc, code).toBe(ErrorCode[code].jsonRpc);
      pairs.set(modern, ErrorCode[code].jsonRpc);
    }
  });
});
