import { ErrorCode } from "@manifold/contracts";
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";

const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
const rows = new Map(
  [...doc.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| (-\d+) \| (yes|no) \|/gm)].map((m) => [
    m[1]!,
    { http: Number(m[2]), jsonRpc: Number(m[3]), retryable: m[4] === "yes" },
  ]),
);

describe("docs/errors.md", () => {
  test.each(Object.entries(ErrorCode))("documents %s with its HTTP status, JSON-RPC code and retry hint", (code, spec) => {
    expect(rows.get(code)).toEqual(spec);
  });

  test("documents no code that does not exist", () => {
    expect([...rows.keys()].filter((code) => !(code in ErrorCode))).toEqual([]);
  });
});
