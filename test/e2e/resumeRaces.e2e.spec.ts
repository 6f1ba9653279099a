import type { NatsServer } from "@manifold/nats-server";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A 2025-era call whose SSE stream ended after an event id is resumed with a GET (toolCallHandler.ts,
// `#resumeLater`). That GET may wait for a connection: the upstream's pool (128 connections) is
// full, or a new connection's handshake is under way (a SEP-1699 server that closes connections,
// a remote upstream over TLS). Until undici starts it, no request of the call is under way: a
// cancel or the call's deadline in that window must still end the call, and the GET once it
// starts. Here the pool is filled by the connector's answers to requests the upstream sent on
// calls' streams, which it takes and never answers (each holds a connection for
// CONNECT_TIMEOUT_MS), the way any 128 slow requests fill it. (It was filled by unanswered
// notifications/cancelled until those were bounded per upstream: heldCancellations.e2e.)

const CONNECT_TIMEOUT_MS = 8_000;
/** The `retry` the upstream names before its stream ends: the pool is full well before it passes (filling it took 0.3-2.2 s, the most on a loaded machine). */
const RETRY_MS = 4_000;
/** The deadline test's call budget: it ends while the GET waits (due at RETRY_MS, sent once the held answers time out). */
const DEADLINE_MS = RETRY_MS + 1_500;
const POOL_CONNECTIONS = 128;
/** Requests `asks` sends on its stream: as many as one call may carry (`CALL_REQUESTS`). */
const ASKED = 32;

interface Upstream {
  url: string;
  server: Server;
  /** GETs with Last-Event-ID received, and when (ms since the epoch). */
  resumedAt: number[];
  /** Resuming GETs whose connection is still open (each is answered with an endless comment stream). */
  openResumes: number;
  /** Answers to its requests and notifications/cancelled received and held unanswered. */
  held: number;
  /** When each `quick` call reached the upstream (ms since the epoch). */
  quickAt: number[];
}

/**
 * A 2025-era Streamable HTTP upstream: `resumable` ends its stream after a priming event (an id,
 * `retry: RETRY_MS`); `asks` sends ASKED requests on its stream, then ends it without an event id
 * (stream_ended at once, then a notifications/cancelled). The answers to those requests and the
 * cancellations this upstream reads and never answers. A resuming GET is answered
 * with a comment every 200 ms, for as long as its connection stays open.
 */
async function startUpstream(): Promise<Upstream> {
  const state: Upstream = { url: "", server: undefined as unknown as Server, resumedAt: [], openResumes: 0, held: 0, quickAt: [] };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "GET" && req.headers["last-event-id"] !== undefined) {
      state.resumedAt.push(Date.now());
      state.openResumes++;
      res.writeHead(200, { "content-type": "text/event-stream" });
      const beat = setInterval(() => res.write(": still working\n\n"), 200);
      res.on("close", () => (clearInterval(beat), state.openResumes--));
      return;
    }
    if (req.method === "GET") return void res.writeHead(405).end();
    if (req.method === "DELETE") return void res.writeHead(200).end();
    let body = "";
    for await (const c of req) body += c;
    const msg = JSON.parse(body) as { id?: string | number; method?: string; params?: { name?: string; protocolVersion?: string } };
    const head = { "mcp-session-id": "s1" };
    if (msg.method === "notifications/cancelled" || (msg.method === undefined && msg.id !== undefined)) {
      state.held++;
      res.on("close", () => state.held--);
      return; // never answered
    }
    if (msg.id === undefined || msg.method === undefined) return void res.writeHead(202, head).end();
    const json = (message: object) => res.writeHead(200, { ...head, "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: msg.id, ...message }));
    if (msg.method === "initialize") return json({ result: { protocolVersion: msg.params?.protocolVersion, capabilities: { tools: {} }, serverInfo: { name: "resume-races", version: "1" } } });
    if (msg.method === "tools/list") return json({ result: { tools: ["resumable", "asks", "quick"].map((name) => ({ name, inputSchema: { type: "object" } })) } });
    if (msg.method !== "tools/call") return json({ error: { code: -32601, message: "no" } });
    if (msg.params?.name === "quick") {
      state.quickAt.push(Date.now());
      return json({ result: { content: [{ type: "text", text: "done" }] } });
    }
    res.writeHead(200, { ...head, "content-type": "text/event-stream" });
    if (msg.params?.name === "resumable") return void res.end(`id: r.${msg.id}.0\nretry: ${RETRY_MS}\ndata: \n\n`);
    for (let i = 0; i < ASKED; i++) res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: `a${msg.id}.${i}`, method: "ping" })}\n\n`);
    res.end(": nothing\n\n");
  };
  state.server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => state.server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}/mcp`;
  return state;
}

let nats: NatsServer;
let stack: Stack;
let agent: DisposableClient;
let tenant: DisposableClient;

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { CALL_TIMEOUT_MS: "20000", CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) });
}, 60_000);

afterAll(async () => {
  await Promise.all([agent?.close(), tenant?.close()]);
  await stack?.close();
  await nats?.stop();
});

/** Registers a fresh upstream (its own pool) and a virtual server of its two tools. */
async function setUp(name: string, callTimeoutMs?: number) {
  const upstream = await startUpstream();
  await registerUpstreams(stack, {
    name,
    transport: { type: "streamable-http", url: upstream.url },
    options: { maxConcurrency: 1_000, ...(callTimeoutMs ? { callTimeoutMs } : {}) },
  } as Parameters<typeof registerUpstreams>[1]);
  const names = await createVirtualServer(stack, `v-${name}`, [
    { upstream: name, tool: "resumable" },
    { upstream: name, tool: "asks" },
    { upstream: name, tool: "quick" },
  ]);
  [agent, tenant] = await Promise.all([connectHttp(stack.mcpUrl(`v-${name}`)), connectHttp(stack.mcpUrl(`v-${name}`))]);
  return { upstream, resumable: names[`${name}/resumable`]!, asks: names[`${name}/asks`]!, quick: names[`${name}/quick`]! };
}

/**
 * Calls `resumable` (its stream ends at once, to be resumed after `RETRY_MS`), then fills the
 * upstream's pool before the GET is due: each `asks` call leaves ASKED answers holding a
 * connection each. The call's outcome, when it started, and how long the filling took.
 */
async function resumeIntoFullPool(upstream: Upstream, resumable: string, asks: string, signal?: AbortSignal) {
  const started = Date.now();
  const outcome = agent.callTool({ name: resumable, arguments: {} }, undefined, signal ? { signal } : undefined).then(
    () => "answered",
    (e: Error) => e.message,
  );
  await new Promise((r) => setTimeout(r, 50));
  await Promise.all(Array.from({ length: POOL_CONNECTIONS / ASKED }, () => tenant.callTool({ name: asks, arguments: {} }).catch(() => undefined)));
  await eventually(() => (upstream.held >= POOL_CONNECTIONS ? true : undefined), 5_000);
  const filledMs = Date.now() - started;
  expect(filledMs).toBeLessThan(RETRY_MS - 300);
  return { outcome, started, filledMs };
}

async function tearDown(upstream: Upstream) {
  await Promise.all([agent.close(), tenant.close()]);
  upstream.server.closeAllConnections();
  upstream.server.close();
}

describe("a call's resuming GET that waits for a connection", () => {
  // Measured 2026-12-06 before the fix (the cancel checked only the `retry` timer): the GET was sent
  // 3.5 s after the cancel, once the held cancels timed out, and held open by the upstream's
  // comments until the call's deadline (10 s); the call held its slot as long.
  test("a call cancelled while its GET waits for a connection is not resumed once one is free", async () => {
    const { upstream, resumable, asks } = await setUp("cancel");
    try {
      const abort = new AbortController();
      const { outcome, started, filledMs } = await resumeIntoFullPool(upstream, resumable, asks, abort.signal);
      // The stream's `retry` passes: the GET is dispatched and waits for a connection.
      await new Promise((r) => setTimeout(r, RETRY_MS + 300 - (Date.now() - started)));
      const cancelledAt = Date.now();
      abort.abort();
      await outcome;
      // The held answers time out (CONNECT_TIMEOUT_MS), their connections free: a GET still queued is sent then.
      await new Promise((r) => setTimeout(r, CONNECT_TIMEOUT_MS + 1_000));
      const figures = JSON.stringify({ filledMs, cancelledMs: cancelledAt - started, resumedAfterCancel: upstream.resumedAt.map((t) => t - cancelledAt), openResumes: upstream.openResumes });
      console.log(`cancelled while the GET waited: ${figures}`);
      expect(upstream.resumedAt.filter((t) => t >= cancelledAt), figures).toEqual([]);
      expect(upstream.openResumes, figures).toBe(0);
    } finally {
      await tearDown(upstream);
    }
  }, 60_000);

  // Measured before the fix: the call failed at its deadline (3.5 s), its GET was sent 2.4 s later
  // and was still open 2.6 s after that: nothing of the call was left to end it (the deadline's
  // abort reached the POST, long over), only the upstream closing it would.
  test("a call whose deadline passes while its GET waits for a connection: the GET, once sent, does not outlive the call", async () => {
    // The call's budget ends while the GET waits (from RETRY_MS until the held answers time out, CONNECT_TIMEOUT_MS after they were sent).
    const { upstream, resumable, asks } = await setUp("deadline", DEADLINE_MS);
    try {
      const { outcome, started, filledMs } = await resumeIntoFullPool(upstream, resumable, asks);
      const message = await outcome;
      const failedAt = Date.now();
      await new Promise((r) => setTimeout(r, CONNECT_TIMEOUT_MS));
      const figures = JSON.stringify({ message, filledMs, failedMs: failedAt - started, resumedAfterFailure: upstream.resumedAt.map((t) => t - failedAt), openResumes: upstream.openResumes });
      console.log(`deadline while the GET waited: ${figures}`);
      expect(message, figures).not.toBe("answered");
      // A GET sent after the call failed is ended at once: no connection of the call left open.
      expect(upstream.openResumes, figures).toBe(0);
    } finally {
      await tearDown(upstream);
    }
  }, 60_000);

  // A call that waits for a connection (the upstream's pool held by requests it does not answer)
  // is bounded by its deadline as one under way is: it fails then, and is never sent afterwards.
  // Before, its deadline timer started only once undici gave it a connection: the agent was told
  // upstream_timeout, and the upstream ran the call seconds later, once a connection freed.
  test("a call still waiting for a connection at its deadline fails then, and never reaches the upstream", async () => {
    const { upstream, asks, quick } = await setUp("queued", DEADLINE_MS - RETRY_MS);
    try {
      await Promise.all(Array.from({ length: POOL_CONNECTIONS / ASKED }, () => tenant.callTool({ name: asks, arguments: {} }).catch(() => undefined)));
      await eventually(() => (upstream.held >= POOL_CONNECTIONS ? true : undefined), 5_000);
      const started = Date.now();
      const message = await agent.callTool({ name: quick, arguments: {} }).then(() => "answered", (e: Error) => e.message);
      const failedAt = Date.now();
      // The held requests time out (CONNECT_TIMEOUT_MS after they were sent): a call still queued would be sent then.
      await new Promise((r) => setTimeout(r, CONNECT_TIMEOUT_MS + 1_000));
      const figures = JSON.stringify({ message, failedMs: failedAt - started, quickAfterFailure: upstream.quickAt.map((t) => t - failedAt) });
      console.log(`queued past its deadline: ${figures}`);
      expect(message, figures).toMatch(/did not answer within/);
      expect(failedAt - started, figures).toBeLessThan(DEADLINE_MS - RETRY_MS + 1_000);
      expect(upstream.quickAt.filter((t) => t >= failedAt), figures).toEqual([]);
    } finally {
      await tearDown(upstream);
    }
  }, 60_000);
});
