import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A hostile 2025 upstream writing raw bytes (test/fixtures/hostileAnswerUpstream.mjs) against the
// connector's direct caller: `NamedHeaders` (the two response headers it reads, parsed by hand) and
// `ToolCallHandler` (JSON and SSE answers read by hand). "raw" is the hostile registration; "other"
// is the same server registered again: another tenant's upstream on the same connector.

const FIXTURE = new URL("../fixtures/hostileAnswerUpstream.mjs", import.meta.url).pathname;
const CALL_TIMEOUT_MS = 4_000;
const TOOLS = [
  "good",
  "error-message-object",
  "error-message-deep",
  "error-code-deep",
  "error-event-message-object",
  "result-and-error",
  "json-array",
  "json-number",
  "json-deep",
  "content-type-twice",
  "content-type-cased",
  "content-type-params",
  "content-type-not-latin1",
  "content-type-folded",
  "content-type-huge",
  "retry-after-huge-number",
  "retry-after-negative",
  "retry-after-exponent",
  "retry-after-far-date",
  "retry-after-twice",
  "retry-after-huge",
  "progress-deep",
  "sse-other-id",
  "sse-cr-only",
  "sse-huge-event",
  "sse-bytewise",
  "json-chunked-bytes",
  "sse-chunked-bytes",
  "informational-flood",
];

let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let names: Record<string, string>;
let agent: DisposableClient;
let tenant: DisposableClient;
const uncaught: unknown[] = [];
process.on("uncaughtException", (e) => uncaught.push(e));

interface Outcome {
  ms: number;
  code?: string;
  message?: string;
  data?: Record<string, unknown>;
  text?: string;
}
async function call(client: DisposableClient, upstream: string, tool: string): Promise<Outcome> {
  const started = Date.now();
  try {
    const result = await client.callTool({ name: names[`${upstream}/${tool}`]!, arguments: {} });
    return { ms: Date.now() - started, text: JSON.stringify(result).slice(0, 200) };
  } catch (e) {
    const error = e as { message: string; data?: Record<string, unknown> };
    return { ms: Date.now() - started, code: error.data?.code as string | undefined, message: error.message, data: error.data };
  }
}

beforeAll(async () => {
  nats = await startNats();
  // A breaker that never opens: each case is judged alone, whatever the cases before it did.
  stack = await startStack(nats.url, { CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS), CONNECTOR_MAX_CONCURRENCY: "4", CONNECTOR_BREAKER_THRESHOLD: "1000" });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  const url = String(first).trim();
  await registerUpstreams(stack, { name: "raw", transport: { type: "streamable-http", url } }, { name: "other", transport: { type: "streamable-http", url } });
  names = await createVirtualServer(stack, "v", [...TOOLS.map((tool) => ({ upstream: "raw", tool })), { upstream: "other", tool: "good" }]);
  [agent, tenant] = await Promise.all([connectHttp(stack.mcpUrl("v")), connectHttp(stack.mcpUrl("v"))]);
}, 60_000);

afterAll(async () => {
  await Promise.all([agent?.close(), tenant?.close()]);
  child?.kill();
  await stack?.close();
  await nats?.stop();
});

/** Waits until the hostile registration answers again (a case before may have dropped its session). */
async function upAgain(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await call(agent, "raw", "good")).text) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the upstream did not come back within 10 s");
}

/** Heap growth (MiB, this process: the connector runs here) and another tenant's call times while `work` runs. */
async function whileRunning(work: Promise<unknown>): Promise<{ heapMiB: number; otherP50: number; otherMax: number; otherFailed: number }> {
  global.gc?.();
  const base = process.memoryUsage().heapUsed;
  let peak = base;
  let done = false;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 10);
  const times: number[] = [];
  let failed = 0;
  const other = (async () => {
    while (!done) {
      const o = await call(tenant, "other", "good");
      if (o.text) times.push(o.ms);
      else failed++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await work;
  done = true;
  await other;
  clearInterval(sampler);
  times.sort((a, b) => a - b);
  return { heapMiB: Math.round((peak - base) / 2 ** 20), otherP50: times[times.length >> 1] ?? -1, otherMax: times.at(-1) ?? -1, otherFailed: failed };
}

describe("a hostile upstream's raw answers are that call's error only, at once", () => {
  // Measured 2026-12-06 before the fix: upstream_timeout after the whole budget (4,254-4,257 ms) for
  // the three with a message that is not a string (the error threw inside undici's callback; the call
  // never settled, its slots held for good); the deep code: no answer at all, 2,472 ms, the gateway's
  // "connector_lost" (encoding the bus reply overflowed the stack).
  test.each(["error-message-object", "error-message-deep", "error-code-deep", "error-event-message-object"])(
    "a JSON-RPC error that is not an integer code and a string message (%s): upstream_error invalid_result",
    async (tool) => {
      await upAgain();
      const o = await call(agent, "raw", tool);
      expect(o.code, JSON.stringify(o)).toBe("upstream_error");
      expect(o.data?.reason).toBe("invalid_result");
      expect(o.ms).toBeLessThan(CALL_TIMEOUT_MS / 2);
    },
    30_000,
  );

  // Measured before the fix, four calls at once: one-byte chunks of a JSON body grew the heap by
  // 489 MiB and took 1.6-2.7 s (payload_too_large); one-byte chunks of SSE comments and endless 103
  // responses held each call its whole budget (upstream_timeout, 4,040 ms); meanwhile another
  // tenant's calls of another upstream went p50 6 -> 180 ms, 4 -> 148 ms, 7 -> 102 ms.
  test.each(["json-chunked-bytes", "sse-chunked-bytes", "informational-flood"])(
    "an answer in endless small pieces (%s): upstream_error within a fraction of the budget, memory bounded",
    async (tool) => {
      await upAgain();
      const outcomes: Outcome[] = [];
      const seen = await whileRunning(Promise.all([0, 1, 2, 3].map(async () => outcomes.push(await call(agent, "raw", tool)))));
      const figures = JSON.stringify({ seen, outcomes: outcomes.map(({ ms, code, message }) => ({ ms, code, message: message?.slice(0, 100) })) });
      for (const o of outcomes) {
        expect(o.code, figures).toBe("upstream_error");
        expect(o.ms, figures).toBeLessThan(CALL_TIMEOUT_MS / 2);
      }
      expect(seen.heapMiB, figures).toBeLessThan(100);
      expect(seen.otherFailed, figures).toBe(0);
    },
    60_000,
  );

  // Passed before and after the fix: what NamedHeaders and ToolCallHandler make of headers and bodies
  // node's own server would not write. Each is the call's own outcome, in the budget, quoting nothing.
  const CASES: [tool: string, outcome: string, retryAfterMs?: number][] = [
    ["result-and-error", "upstream_error"],
    ["json-array", "upstream_error"],
    ["json-number", "upstream_error"],
    ["json-deep", "upstream_error"],
    // Either header read as undici reads it (a list, joined): an SSE stream that holds no event,
    // which ends without the answer (`stream_ended`, endedCallStreams.e2e; upstream_unavailable before).
    ["content-type-twice", "upstream_error"],
    // Media types are matched as the SDK matches them (case-sensitive): a body that is not JSON.
    ["content-type-cased", "upstream_error"],
    ["content-type-params", "ok"],
    ["content-type-not-latin1", "ok"],
    // undici refuses a folded header line, a header block past 16 KiB.
    ["content-type-folded", "upstream_unavailable"],
    ["content-type-huge", "upstream_unavailable"],
    ["retry-after-huge-number", "upstream_rate_limited"],
    ["retry-after-negative", "upstream_rate_limited"],
    ["retry-after-exponent", "upstream_rate_limited"],
    ["retry-after-far-date", "upstream_rate_limited", 300_000],
    ["retry-after-twice", "upstream_rate_limited"],
    ["retry-after-huge", "upstream_rate_limited"],
    // An error event under another call's id is not this call's answer.
    ["sse-other-id", "ok"],
    ["sse-cr-only", "ok"],
    ["sse-huge-event", "payload_too_large"],
    ["sse-bytewise", "ok"],
  ];
  test.each(CASES)("%s: %s", async (tool, outcome, retryAfterMs) => {
    await upAgain();
    const o = await call(agent, "raw", tool);
    expect(o.code ?? "ok", JSON.stringify(o)).toBe(outcome);
    expect(o.ms).toBeLessThan(CALL_TIMEOUT_MS / 2);
    expect(o.data?.retryAfterMs).toBe(retryAfterMs);
    // Nothing of what the upstream wrote is repeated: its header values, its error texts.
    expect(`${o.message} ${JSON.stringify(o.data)}`).not.toMatch(/aaaa|folded|\u2603|☃|9999|1e3|not yours|1111/);
  }, 30_000);

  // Measured before the fix: upstream_unavailable "could not be reached: Maximum call stack size
  // exceeded" (encoding the notification threw into the call), and the shared session was dropped.
  test("a progress notification nested 100,000 deep is dropped; the call is answered", async () => {
    await upAgain();
    const started = Date.now();
    const progress: unknown[] = [];
    const result = await agent
      .callTool({ name: names["raw/progress-deep"]!, arguments: {} }, undefined, { onprogress: (p) => void progress.push(p) })
      .then((r) => JSON.stringify(r), (e: Error) => `ERR ${e.message}`);
    expect(result).toContain('"ok"');
    expect(progress).toEqual([]);
    expect(Date.now() - started).toBeLessThan(CALL_TIMEOUT_MS / 2);
  }, 30_000);

  test("the connector is up, and another tenant's upstream served throughout", async () => {
    expect((await call(tenant, "other", "good")).text).toContain("ok");
    expect(uncaught).toEqual([]);
  });
});
