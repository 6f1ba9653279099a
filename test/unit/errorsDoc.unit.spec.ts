import { ErrorCode, jsonRpcCodeOf } from "@manifold/contracts";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";

const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
const rows = new Map(
  [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| (-\d+) \| (-\d+) \| (yes|no) \|/gm)].map((m) => [
    m[1]!,
    { http: Number(m[2]), jsonRpc: Number(m[3]), modern: Number(m[4]), retryable: m[5] === "yes" },
  ]),
);

describe("docs/errors.md", () => {
  test.each(Object.entries(ErrorCode))("documents %s with its HTTP status, JSON-RPC codes (2025, 2026-07-28) and retry hint", (code, { http, jsonRpc, retryable }) => {
    expect(rows.get(code)).toEqual({ http, jsonRpc, modern: jsonRpcCodeOf(code as ErrorCode, "modern"), retryable });
  });

  test("documents no code that does not exist", () => {
    expect([...rows.keys()].filter((code) => !(code in ErrorCode))).toEqual([]);
  });
});
