import type { NatsServer } from "@manifold/nats-server";
import { BusHeader, MAX_LISTED_ITEMS, Subjects } from "@manifold/contracts";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListPromptsRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { MAX_LIST_PAGES } from "@manifold/connector";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// A hostile upstream's tools/list whose nextCursor never ends. Before: the client walked its
// default 64 pages, the failure read "could not be reached", dropped the shared session, and the
// reconnect started the walk again (574 pages, ~115 MB and +155 MiB of heap in 10 s).
// And lists that end, but hold more than one discovery may record: before, the connector walked
// all 16 pages before it counted them (16 pages of 19,000 tools held its event loop 450–640 ms),
// and the registry decided on a report of 19,000 tools before refusing it (580–900 ms).

// Few enough tools a page that 16 pages stay within the bounds on tools and bytes: the bound on pages is what ends the walk.
const PAGE_TOOLS = 50;
/** How long the hostile upstream keeps handing out cursors before it ends the list (so the test process survives). */
const ENDLESS_MS = 25_000;

let nats: NatsServer;
let stack: Stack;
let endless: SessionServer<Server>;
let calm: SessionServer<Server>;
let pagesServed = 0;
let endlessUntil = 0;
/** Pages each hostile list shape served, by shape. */
const crowdedPages = { many: 0, large: 0, repeating: 0 };
/**
 * Each page of `many`: more tools than one upstream may list. Of `large`: one tool of 200 KB. And
 * `repeating` ignores cursors: its whole list of 600 every time, under one fixed `nextCursor`.
 */
const CROWDED = { many: { tools: 5_000, bytes: 0 }, large: { tools: 1, bytes: 200_000 }, repeating: { tools: 600, bytes: 0 } };
let crowded: Record<keyof typeof CROWDED, SessionServer<Server>>;
/** One small tool, and prompts on 4 pages of 200 KB: more than half a bus message. */
let wordy: SessionServer<Server>;

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
  const crowd = (shape: keyof typeof CROWDED) =>
    serveSessions(() => {
      const server = new Server({ name: shape, version: "1.0.0" }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, (request) => {
        const page = shape === "repeating" ? 0 : Number(request.params?.cursor ?? 0);
        crowdedPages[shape]++;
        const { tools, bytes } = CROWDED[shape];
        const listed = Array.from({ length: tools }, (_, i) => ({ name: `p${page}_${i}`, description: "d".repeat(bytes), inputSchema: { type: "object" as const } }));
        return { tools: listed, ...(page + 1 < MAX_LIST_PAGES ? { nextCursor: String(page + 1) } : {}) };
      });
      return server;
    });
  wordy = await serveSessions(() => {
    const server = new Server({ name: "wordy", version: "1.0.0" }, { capabilities: { tools: {}, prompts: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: "ping", inputSchema: { type: "object" as const } }] }));
    server.setRequestHandler(ListPromptsRequestSchema, (request) => {
      const page = Number(request.params?.cursor ?? 0);
      return { prompts: [{ name: `p${page}`, description: "d".repeat(200_000) }], ...(page < 3 ? { nextCursor: String(page + 1) } : {}) };
    });
    return server;
  });
  crowded = { many: await crowd("many"), large: await crowd("large"), repeating: await crowd("repeating") };
  await registerUpstreams(stack, { name: "calm", transport: { type: "streamable-http", url: calm.url } });
}, 60_000);

afterAll(async () => {
  endlessUntil = 0;
  await stack?.close();
  await calm?.close();
  await endless?.close();
  await crowded?.many.close();
  await crowded?.large.close();
  await crowded?.repeating.close();
  await wordy?.close();
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

test("attack: a tool list of more tools than an upstream may list is refused at the page that crosses the bound, not after all 16", async () => {
  const res = await stack.admin.post("/v1/upstreams", { name: "many", transport: { type: "streamable-http", url: crowded.many.url } });
  expect(res.body.discovery).toMatchObject({ status: "failed", error: { code: "upstream_error" } });
  expect(res.body.discovery.error.message).toContain(`lists more than ${MAX_LISTED_ITEMS} tools`);
  // The registration's walk and the connector's own, on connecting: one page each (before: 16 each).
  expect(crowdedPages.many, "pages walked").toBeLessThanOrEqual(2);
}, 60_000);

test("attack: a tool list of more bytes than one bus message is refused at the page that crosses the bound", async () => {
  const res = await stack.admin.post("/v1/upstreams", { name: "large", transport: { type: "streamable-http", url: crowded.large.url } });
  expect(res.body.discovery).toMatchObject({ status: "failed", error: { code: "payload_too_large" } });
  expect(res.body.discovery.error.message).toMatch(/lists tools of at least \d+ bytes, more than the message bus carries \(1048576 bytes/);
  // 200 KB a page: the sixth crosses 1 MiB (before: all 16 pages each walk).
  expect(crowdedPages.large, "pages walked").toBeLessThanOrEqual(2 * 6);
}, 60_000);

test("a list that repeats itself under one cursor is read once, as the SDK reads it: its tools are not counted twice", async () => {
  const res = await stack.admin.post("/v1/upstreams", { name: "repeating", transport: { type: "streamable-http", url: crowded.repeating.url } });
  expect(res.body.discovery).toMatchObject({ status: "ok", tools: CROWDED.repeating.tools });
}, 60_000);

test("prompts too large to report beside the tools are left out, and the tools recorded", async () => {
  const res = await stack.admin.post("/v1/upstreams", { name: "wordy", transport: { type: "streamable-http", url: wordy.url } });
  expect(res.body.discovery).toMatchObject({ status: "ok", tools: 1 });
  const upstream = await stack.admin.get("/v1/upstreams/wordy");
  expect(upstream.body.tools.map((t: { name: string }) => t.name)).toEqual(["ping"]);
  expect(upstream.body.prompts).toEqual([]);
}, 60_000);

test("attack: a discovery report of more tools than an upstream may list is refused before the registry decides on it", async () => {
  const before = await stack.admin.get("/v1/upstreams/calm");
  const nc = await connectAs(nats, "connector");
  try {
    const tools = Array.from({ length: 19_000 }, (_, i) => ({ name: `t${i}`, inputSchema: { type: "object" } }));
    const report = { upstream: "calm", serverInfo: { name: "calm", version: "2.0.0" }, tools };
    const reply = await nc.request(Subjects.registryDiscovered("calm"), JSON.stringify(report), { timeout: 10_000 });
    expect(reply.headers?.get(BusHeader.errorCode)).toBe("invalid_request");
  } finally {
    await nc.close();
  }
  const after = await stack.admin.get("/v1/upstreams/calm");
  expect(after.body.tools).toEqual(before.body.tools);
}, 60_000);
