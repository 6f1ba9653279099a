import { AuditRecord } from "@manifold/contracts";
import { principalName, type Principal } from "@manifold/domain";
import { describe, expect, test } from "vitest";
import { encodeAuditRecord, type AuditNames } from "./auditEncoding.js";

const alice: Principal = { id: "consumer-id-1", consumer: "alice", groups: [] };
const bob: Principal = { id: "consumer-id-2", consumer: "bob", groups: [] };
// A token's subject is the caller's text: quotes, control characters, lone surrogates, non-ASCII.
const hostile: Principal = { id: 'sub "x"\n\u0000\ud800 ☃ \\', groups: [] };

function recordOf(names: AuditNames, extra: Partial<AuditRecord> = {}): AuditRecord {
  const record: AuditRecord = {
    at: "2026-12-05T21:00:00.123Z",
    consumer: principalName(names.principal),
    virtualServer: names.virtualServer,
    environment: names.environment,
    exposedTool: names.exposedTool,
    tool: names.tool,
    upstream: names.upstream,
    durationMs: 1.234,
    outcome: "ok",
    argumentBytes: 27,
    resultBytes: 61,
  };
  // Added as the observer adds them: after the sizes.
  if (extra.errorCode !== undefined) record.errorCode = extra.errorCode;
  if (extra.errorReason !== undefined) record.errorReason = extra.errorReason;
  if (extra.traceId !== undefined) record.traceId = extra.traceId;
  return { ...record, ...extra };
}

describe("an audit record as JSON text", () => {
  const names: AuditNames[] = [
    { principal: alice, virtualServer: "bench", environment: "default", exposedTool: "fast__echo", tool: "echo", upstream: "fast" },
    { principal: bob, virtualServer: "bench", environment: "default", exposedTool: "fast__echo", tool: "echo", upstream: "fast" },
    { principal: alice, virtualServer: "bench", environment: "staging", exposedTool: "fast__echo", tool: "echo", upstream: "fast" },
    { principal: alice, virtualServer: "bench", environment: "default", exposedTool: "fast__echo", tool: "echo", upstream: "fast-b" },
    { principal: hostile, virtualServer: "bench", environment: "default", exposedTool: "(invalid)", tool: 'to"ol\u2028\t', upstream: "(none)" },
  ];
  const variants: Partial<AuditRecord>[] = [
    {},
    { outcome: "error", errorCode: "upstream_timeout", durationMs: 30_000.5 },
    { outcome: "input_required", traceId: "0af7651916cd43dd8448eb211c80319c" },
    { outcome: "error", errorCode: 'odd "code"', traceId: "t", durationMs: 0, argumentBytes: 0, resultBytes: 0 },
    { outcome: "error", errorCode: "upstream_error", errorReason: "invalid_result", traceId: "t" },
    { durationMs: 1e21, at: "2026-12-05T21:00:00.124Z" },
  ];

  test("is what JSON.stringify writes, for every caller, name and optional member, twice (made, then cached)", () => {
    for (let round = 0; round < 2; round++) {
      for (const n of names) {
        for (const v of variants) {
          const record = recordOf(n, v);
          expect(encodeAuditRecord(record, n)).toBe(JSON.stringify(record));
        }
      }
    }
  });

  test("writes every member of a record without values: one added to AuditRecord fails here until the encoder writes it", () => {
    const valueMembers = new Set(["arguments", "result", "valuesOmitted"]);
    const written = Object.keys(JSON.parse(encodeAuditRecord(recordOf(names[0]!, { errorCode: "e", errorReason: "r", traceId: "t" }), names[0]!)));
    expect(written.sort()).toEqual(Object.keys(AuditRecord.shape).filter((k) => !valueMembers.has(k)).sort());
  });

  test("a caller's cached names never answer for another caller with the same names", () => {
    const [a, b] = [names[0]!, names[1]!];
    expect(JSON.parse(encodeAuditRecord(recordOf(a), a)).consumer).toBe("consumer:alice");
    expect(JSON.parse(encodeAuditRecord(recordOf(b), b)).consumer).toBe("consumer:bob");
  });

  test("stays exact past the cache's bound (12,000 distinct tools)", () => {
    const n = names[0]!;
    for (let i = 0; i < 12_000; i++) {
      const each = { ...n, exposedTool: `fast__t${i}`, tool: `t${i}` };
      const record = recordOf(each);
      const text = encodeAuditRecord(record, each);
      if (i % 997 === 0 || i > 9_990) expect(text).toBe(JSON.stringify(record));
    }
    expect(encodeAuditRecord(recordOf(n), n)).toBe(JSON.stringify(recordOf(n)));
  });
});
