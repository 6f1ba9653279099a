import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { adminCase } from "../fuzz/adminCases.js";
import { exchange, runAll, type HttpCase } from "../fuzz/exchange.js";
import { mcpCase, type McpTarget } from "../fuzz/mcpCases.js";
import { judgeAdmin, judgeMcp, type Verdict } from "../fuzz/oracle.js";
import { Random } from "../fuzz/random.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { ADMIN_TOKEN, startNats, startStack, type Stack } from "../helpers/stack.js";

// `pnpm fuzz:long` raises the counts; FUZZ_SEED reproduces a run.
const MCP_REQUESTS = Number(process.env.FUZZ_MCP_REQUESTS ?? 2_000);
const ADMIN_REQUESTS = Number(process.env.FUZZ_ADMIN_REQUESTS ?? 500);
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_130);
const CONCURRENCY = 16;
const BODY_LIMIT = 256 * 1024;
/** Growth of this process's RSS (all services run in it) the fuzz may cause. */
const RSS_GROWTH_LIMIT = 400 * 1024 * 1024;

interface Tally {
  requests: number;
  outcomes: Map<string, number>;
  violations: string[];
  slowestMs: number;
}

/** What a run found, reproducible: the case (credentials elided) and what was wrong with its answer. */
const describeCase = (c: HttpCase) => {
  const { authorization: _a, ...headers } = c.headers;
  const body = typeof c.body === "string" ? c.body.slice(0, 200) : "";
  return `${c.kind}: ${c.method} ${c.path.slice(0, 200)} ${JSON.stringify(headers).slice(0, 300)} ${body}`;
};

async function fuzz(baseUrl: string, cases: Iterable<HttpCase>, judge: (c: HttpCase, a: Parameters<typeof judgeMcp>[1]) => Verdict, fresh = false): Promise<Tally> {
  const tally: Tally = { requests: 0, outcomes: new Map(), violations: [], slowestMs: 0 };
  const note = (outcome: string): void => void tally.outcomes.set(outcome, (tally.outcomes.get(outcome) ?? 0) + 1);
  await runAll(cases, CONCURRENCY, async (c) => {
    const answer = await exchange(baseUrl, c, 5_000, fresh);
    tally.requests++;
    tally.slowestMs = Math.max(tally.slowestMs, answer.ms);
    if ("error" in answer) {
      if (answer.error.startsWith("client:")) return note("not sendable");
      note("no answer");
      tally.violations.push(`${answer.error} ← ${describeCase(c)}`);
      return;
    }
    const verdict = judge(c, answer);
    note(verdict.outcome);
    if (verdict.violation) tally.violations.push(`${verdict.violation} ← ${describeCase(c)}`);
  });
  return tally;
}

function* generate<T>(count: number, make: () => T): Generator<T> {
  for (let i = 0; i < count; i++) yield make();
}

const report = (name: string, tally: Tally, ms: number) =>
  `${name}: ${tally.requests} requests in ${(ms / 1000).toFixed(1)} s, slowest ${tally.slowestMs.toFixed(0)} ms, outcomes ${JSON.stringify(Object.fromEntries([...tally.outcomes].sort((a, b) => b[1] - a[1])))}\n`;

describe("fuzzing the real services with hostile requests", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let target: McpTarget;
  let rssBaseline = 0;
  let rssMax = 0;
  let sampler: NodeJS.Timeout;

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_BODY_LIMIT_BYTES: String(BODY_LIMIT) }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url }, options: { passthroughHeaders: ["X-Tenant"] } });
    const names = await createVirtualServer(stack, "fuzz", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
    ]);
    expect((await stack.admin.post("/v1/consumers", { name: "fuzzer" })).status).toBe(201);
    const key = (await stack.admin.post("/v1/consumers/fuzzer/keys", {})).body.key as string;
    expect((await stack.admin.post("/v1/virtual-servers/fuzz/grants", { grantId: "fuzzer", subject: { consumer: "fuzzer" } })).status).toBe(201);
    await stack.admin.request("PUT", "/v1/virtual-servers/fuzz/audit", { recordValues: true, redactFields: ["authorization"] });
    const init = await fetch(stack.mcpUrl("fuzz"), {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "fuzz", version: "1" } } }),
    });
    expect(init.status).toBe(200);
    await init.text();
    target = { virtualServer: "fuzz", key, session: init.headers.get("mcp-session-id")!, tools: [names["rec/echo"]!, names["rec/add"]!], upstream: "rec", bodyLimit: BODY_LIMIT };
    rssBaseline = rssMax = process.memoryUsage().rss;
    sampler = setInterval(() => (rssMax = Math.max(rssMax, process.memoryUsage().rss)), 100);
  });

  afterAll(async () => {
    clearInterval(sampler);
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  /** Everything still works after the run: a normal agent call, both services ready. */
  const stillServing = async () => {
    // The fuzzer's own requests spent its request budget (unknown session ids cost a look-up each): it refills within a second.
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl("fuzz")), { requestInit: { headers: { authorization: `Bearer ${target.key}` } } });
    await using agent = await connectClient(transport);
    const result = await agent.callTool({ name: target.tools[0]!, arguments: { message: "still here" } });
    expect(result.content).toEqual([{ type: "text", text: "echo: still here" }]);
    expect((await fetch(`${stack.gatewayUrl}/readyz`)).status).toBe(200);
    expect((await stack.admin.get("/v1/virtual-servers/fuzz")).status).toBe(200);
  };

  test(`${MCP_REQUESTS} hostile MCP requests: JSON-RPC envelopes with documented codes, no 5xx, no hang`, { timeout: 600_000 }, async () => {
    const random = new Random(SEED);
    const started = performance.now();
    const tally = await fuzz(stack.gatewayUrl, generate(MCP_REQUESTS, () => mcpCase(random, target)), judgeMcp);
    process.stdout.write(report(`MCP fuzz (seed ${SEED})`, tally, performance.now() - started));
    process.stdout.write(`max RSS ${(rssMax / 2 ** 20).toFixed(0)} MiB (baseline ${(rssBaseline / 2 ** 20).toFixed(0)} MiB)\n`);
    expect(tally.requests).toBe(MCP_REQUESTS);
    expect(tally.violations.slice(0, 20)).toEqual([]);
    expect(rssMax - rssBaseline).toBeLessThan(RSS_GROWTH_LIMIT);
    await stillServing();
  });

  // A connection per request: after a 413 the registry keeps the connection open with the refused
  // body unread, so the next request on it fails (reported to the registry's owner).
  test(`${ADMIN_REQUESTS} hostile admin requests: the documented error shape, no 5xx, no hang`, { timeout: 600_000 }, async () => {
    const random = new Random(SEED + 1);
    const started = performance.now();
    const tally = await fuzz(stack.admin.baseUrl, generate(ADMIN_REQUESTS, () => adminCase(random, ADMIN_TOKEN)), judgeAdmin, true);
    process.stdout.write(report(`admin fuzz (seed ${SEED + 1})`, tally, performance.now() - started));
    expect(tally.requests).toBe(ADMIN_REQUESTS);
    expect(tally.violations.slice(0, 20)).toEqual([]);
    await stillServing();
  });
});
