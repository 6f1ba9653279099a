import type { NatsServer } from "@manifold/nats-server";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { MAX_LIST_PAGES } from "@manifold/connector";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A hostile upstream's tools/list whose nextCursor never ends. Before: the client walked its
// default 64 pages, the failure read "could not be reached", dropped the shared session, and the
// reconnect started the walk again (574 pages, ~115 MB and +155 MiB of heap in 10 s).

const PAGE_TOOLS = 200;
/** How long the hostile upstream keeps handing out cursors before it ends the list (so the test process survives). */
const ENDLESS_MS = 25_000;

let nats: NatsServer;
let stack: Stack;
let endless: SessionServer<Server>;
let calm: SessionServer<Server>;
let pagesServed = 0;
let endlessUntil = 0;

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url);
  calm = await serveSessions(() => {
    const server = new Server({ name: "calm", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: "ping", inputSchema: { type: "object" as const } }] }));
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "pong" }] }));
    return server;
  });
  endless = await serveSessions(() => {
    const server = new Server({ name: "endless", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, (request) => {
      const page = Number(request.params?.cursor ?? 0);
      // Before the attack starts, one ordinary page (so the registration succeeds as any upstream's does).
      if (Date.now() > endlessUntil) return { tools: [{ name: "t0", inputSchema: { type: "object" as const } }] };
      pagesServed++;
      const tools = Array.from({ length: PAGE_TOOLS }, (_, i) => ({ name: `p${page}_${i}`, description: "d".repeat(1_000), inputSchema: { type: "object" as const } }));
      return { tools, nextCursor: String(page + 1) };
    });
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "ok" }] }));
    return server;
  });
  await registerUpstreams(stack, { name: "calm", transport: { type: "streamable-http", url: calm.url } });
}, 60_000);

afterAll(async () => {
  endlessUntil = 0;
  await stack?.close();
  await calm?.close();
  await endless?.close();
  await nats?.stop();
});

test("attack: a tools/list whose cursors never end is given up after 16 pages a discovery, as the upstream's error, and not walked again", async () => {
  endlessUntil = Date.now() + ENDLESS_MS;
  globalThis.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  const started = Date.now();
  const res = await stack.admin.post("/v1/upstreams", { name: "endless", transport: { type: "streamable-http", url: endless.url } });
  const answeredAfter = Date.now() - started;
  const pagesAtAnswer = pagesServed;
  // The registration answered (its discovery failed or timed out); now watch what the connector keeps doing.
  let peakHeap = 0;
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 1_000));
    const heap = process.memoryUsage().heapUsed;
    peakHeap = Math.max(peakHeap, heap);
    samples.push(pagesServed);
  }
  const growthMiB = (peakHeap - heapBefore) / 2 ** 20;
  console.log(
    JSON.stringify({
      status: res.status,
      discovery: res.body.discovery,
      answeredAfterMs: answeredAfter,
      pagesAtAnswer,
      pagesAfter10s: pagesServed,
      pagesPerSecond: samples,
      heapGrowthMiB: Math.round(growthMiB),
    }),
  );
  // Each walk stops at MAX_LIST_PAGES (the registration's discovery and the connector's own, on
  // connecting): the list is the upstream's error, not a reason to reconnect and walk again.
  expect(res.body.discovery).toMatchObject({ status: "failed", error: { code: "upstream_error" } });
  expect(res.body.discovery.error.message).toContain(`more than ${MAX_LIST_PAGES} pages`);
  expect(pagesServed, "pages the connector followed in all").toBeLessThanOrEqual(3 * MAX_LIST_PAGES);
  expect(growthMiB, "heap the connector held for one upstream's list").toBeLessThan(64);
}, 120_000);
