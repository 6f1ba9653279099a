import type { NatsServer } from "@manifold/nats-server";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { registerUpstreams } from "../helpers/catalog.js";
import { forward } from "../helpers/forward.js";
import { connectHttp } from "../helpers/mcp.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attacks (found by an attacker helper playing a hostile 2026-07-28 upstream), both on an upstream
// with a 2 s call budget. The connector bounded a direct call only by the wait between chunks:
// - "trickle" answers with an SSE stream carrying a comment every 500 ms and never the answer: the
//   agent was told upstream_timeout after 2.3 s, but the connector kept both requests open for good
//   (still open 12 s later), holding the tool's slots: every later call of it failed for want of one;
// - "rounds" answers input_required with no questions, each after 1.8 s: one call made 9 upstream
//   requests over 14.5 s, each round given the whole budget again.

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "d".repeat(48) };
const BUDGET_MS = 2_000;
let nats: NatsServer;
let stack: Stack;
let modern: Awaited<ReturnType<typeof serveModernHttp>>;
let hostile: Server;
const open = new Set<ServerResponse>();
const streamLives: number[] = [];
const roundPosts: number[] = [];
let trickle = "";
let rounds = "";

beforeAll(async () => {
  nats = await startNats();
  [stack, modern] = await Promise.all([startStack(nats.url, KEY_ENV), serveModernHttp()]);
  // The modern fixture, with two of its tools turned hostile.
  hostile = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    let message: { id?: unknown; method?: string; params?: { name?: string; _meta?: Record<string, { elicitation?: unknown } | undefined> } } | undefined;
    try {
      message = JSON.parse(body.toString()) as typeof message;
    } catch {
      // A GET or DELETE: passed on below.
    }
    if (message?.method === "tools/call" && message.params?.name === "slow") {
      const openedAt = Date.now();
      res.writeHead(200, { "content-type": "text/event-stream" });
      open.add(res);
      const ticks = setInterval(() => res.write(":\n"), 500);
      res.on("close", () => {
        clearInterval(ticks);
        open.delete(res);
        streamLives.push(Date.now() - openedAt);
      });
      return;
    }
    if (message?.method === "tools/call" && message.params?.name === "echo" && message.params._meta?.["io.modelcontextprotocol/clientCapabilities"]?.elicitation) {
      roundPosts.push(Date.now());
      const n = roundPosts.length;
      setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result: { resultType: "input_required", requestState: `s${n}` } })), 1_800);
      return;
    }
    await forward(modern.url, req, body, res);
  });
  await new Promise<void>((resolve) => hostile.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(hostile.address() as AddressInfo).port}${new URL(modern.url).pathname}`;
  await registerUpstreams(stack, { name: "hostile", transport: { type: "streamable-http", url }, options: { callTimeoutMs: BUDGET_MS, maxConcurrency: 4 } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "vs", tools: [{ upstream: "hostile", tool: "slow" }, { upstream: "hostile", tool: "echo" }] });
  for (const t of vs.body.tools as { tool: string; exposedName: string }[]) {
    if (t.tool === "slow") trickle = t.exposedName;
    else rounds = t.exposedName;
  }
}, 60_000);

afterAll(async () => {
  for (const res of open) res.destroy();
  await stack?.close();
  hostile?.close();
  await modern?.close();
  await nats?.stop();
});

test("a call whose answer only trickles ends upstream at its budget, and its slots serve the next calls", async () => {
  await using agent = await connectHttp(stack.mcpUrl("vs"));
  const call = () => agent.callTool({ name: trickle, arguments: {} }, undefined, { timeout: 30_000 }).then(() => "answered", (error: Error) => error.message);
  const outcomes = await Promise.all([call(), call()]);
  for (const outcome of outcomes) expect(outcome).toMatch(/upstream_timeout|did not answer|no answer|timed out/i);
  // The connector closes both streams at the budget (before: still open 12 s later).
  for (let i = 0; i < 40 && open.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect(open.size).toBe(0);
  for (const life of streamLives) expect(life).toBeLessThan(BUDGET_MS + 1_000);
  // The tool's two slots (half of 4) are free again: the next calls time out at the upstream, not waiting for a slot.
  const again = await Promise.all([call(), call()]);
  for (const outcome of again) expect(outcome).not.toMatch(/free slot/);
}, 30_000);

test("rounds without questions end at the call's budget, not a budget per round", async () => {
  const started = Date.now();
  const got = await modernRequest(stack.mcpUrl("vs"), "none", "tools/call", { name: rounds, arguments: { message: "hi" } }, declaring({ elicitation: {} }, false));
  expect(got.error?.data?.code ?? got.error?.code, JSON.stringify(got)).toBeDefined();
  // Long enough for several more rounds, had they been sent.
  await new Promise((r) => setTimeout(r, 4_000));
  const at = roundPosts.map((t) => t - started);
  console.log(`upstream requests of the one call at (ms): ${JSON.stringify(at)}`);
  expect(at.length).toBeLessThanOrEqual(2);
  for (const t of at) expect(t).toBeLessThan(BUDGET_MS);
}, 30_000);
