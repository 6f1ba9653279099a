import { LOG_PREFIX, NOTIFICATION_BYTES_PER_CALL, PROGRESS_PREFIX, RegistryStream } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { ServerResponse } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { writable } from "../fixtures/writable.mjs";

// What a registered upstream may do to everyone else by talking too much: announce list changes
// without end (each discovery that finds a change appends the whole list to the registry's
// stream, which keeps every event), or flood the notifications of a call.

let nats: NatsServer;
let stack: Stack;
let storm: SessionServer<Server>;
let noisy: SessionServer<Server>;
let flaky: SessionServer<Server>;
/** While set, the flaky upstream answers tools/list with 500 (its calls still work). */
let listsFail = false;
let failedLists = 0;
/** Bumped for every announced change: the list really changes each time. */
let revision = 0;
/** Notifications the noisy upstream wrote in its last call. */
let flooded = 0;

async function flood(res: ServerResponse, id: unknown, progressToken: unknown, sessionId: string | undefined): Promise<void> {
  res.writeHead(200, { "content-type": "text/event-stream", ...(sessionId ? { "mcp-session-id": sessionId } : {}) });
  const text = "p".repeat(1_000);
  flooded = 0;
  for (const until = Date.now() + 2_000; Date.now() < until && !res.destroyed; flooded++) {
    const params = progressToken === undefined ? { level: "error", data: text } : { progressToken, progress: flooded, message: text };
    const note = { jsonrpc: "2.0", method: progressToken === undefined ? "notifications/message" : "notifications/progress", params };
    if (!res.write(`data: ${JSON.stringify(note)}\n\n`)) await writable(res);
  }
  res.end(`data: ${JSON.stringify({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: `sent ${flooded}` }] } })}\n\n`);
}

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url);
  storm = await serveSessions(() => {
    const server = new Server({ name: "storm", version: "1.0.0" }, { capabilities: { tools: { listChanged: true } } });
    const tools = () => Array.from({ length: 200 }, (_, i) => ({ name: `t${i}`, description: `${i === 0 ? `revision ${revision} ` : ""}${"d".repeat(1_000)}`, inputSchema: { type: "object" as const } }));
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: tools() }));
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "ok" }] }));
    return server;
  });
  // Answers a call on its stream after 2 s of progress or log notifications (1 KB each), as fast as the socket takes them.
  noisy = await serveSessions(
    () => {
      const server = new Server({ name: "noisy", version: "1.0.0" }, { capabilities: { tools: {}, logging: {} } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: "progress", inputSchema: { type: "object" as const } }, { name: "logs", inputSchema: { type: "object" as const } }] }));
      return server;
    },
    0,
    async (req, res, body) => {
      const m = body as { id?: unknown; method?: string; params?: { name?: string; _meta?: { progressToken?: unknown } } } | undefined;
      if (m?.method !== "tools/call") return false;
      await flood(res, m.id, m.params?.name === "logs" ? undefined : m.params?._meta?.progressToken, req.headers["mcp-session-id"] as string | undefined);
      return true;
    },
  );
  flaky = await serveSessions(
    () => {
      const server = new Server({ name: "flaky", version: "1.0.0" }, { capabilities: { tools: { listChanged: true } } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: "t", inputSchema: { type: "object" as const } }] }));
      return server;
    },
    0,
    (_req, res, body) => {
      if (!listsFail || (body as { method?: string } | undefined)?.method !== "tools/list") return false;
      failedLists++;
      res.writeHead(500).end("lists are broken");
      return true;
    },
  );
  await registerUpstreams(
    stack,
    { name: "storm", transport: { type: "streamable-http", url: storm.url } },
    { name: "noisy", transport: { type: "streamable-http", url: noisy.url } },
    { name: "flaky", transport: { type: "streamable-http", url: flaky.url } },
  );
  await createVirtualServer(stack, "stormy", [{ upstream: "storm", tool: "t0" }, { upstream: "noisy", tool: "progress" }, { upstream: "noisy", tool: "logs" }]);
});

afterAll(async () => {
  await stack?.close();
  await storm?.close();
  await noisy?.close();
  await flaky?.close();
  await nats?.stop();
});

test("attack: an upstream announcing a changed tool list every 5 ms appends a handful of events, not one per change", async () => {
  const observer = await connectAs(nats, "operator", "observer");
  const jsm = await jetstreamManager(observer);
  const before = (await jsm.streams.info(RegistryStream.name)).state;
  let announced = 0;
  for (const until = Date.now() + 5_000; Date.now() < until; ) {
    revision++;
    for (const server of storm.servers()) await server.sendToolListChanged().catch(() => undefined);
    announced++;
    await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 1_000));
  const after = (await jsm.streams.info(RegistryStream.name)).state;
  const events = after.messages - before.messages;
  // Before: 9 events a second of ~234 KB each (a 5 s storm: ~45 events, ~10 MB). Now the burst
  // of five, then gaps of 1 s and 2 s: at most 8 in 6 s.
  // At least a hundred changes, even where the machine is busy (one every 5 ms where it is not).
  expect(announced).toBeGreaterThan(100);
  expect(events).toBeGreaterThan(0);
  expect(events).toBeLessThanOrEqual(8);
  // The drift is still seen: the virtual server's pinned tool has drifted.
  const drift = await stack.admin.get("/v1/virtual-servers/stormy/drift");
  expect(drift.status).toBe(200);
  expect(JSON.stringify(drift.body)).toContain("revision");
  await observer.close();
});

test("attack: an upstream flooding one call with progress or log notifications puts at most the call's budget on the bus", async () => {
  const observer = await connectAs(nats, "operator", "observer");
  const onBus = { progress: 0, log: 0 };
  observer.subscribe(`${PROGRESS_PREFIX}.>`, { callback: (_e, msg) => void (onBus.progress += msg.data.length) });
  observer.subscribe(`${LOG_PREFIX}.>`, { callback: (_e, msg) => void (onBus.log += msg.data.length) });
  await using agent = await connectHttp(stack.mcpUrl("stormy"), "flooded");
  await agent.setLoggingLevel("debug");
  const names = (await agent.listTools()).tools.map((t) => t.name);
  expect(names.length, JSON.stringify(names)).toBe(3);
  expect(names.filter((n) => n.startsWith("progress") || n.startsWith("logs")), JSON.stringify(names)).toHaveLength(2);
  let heard = 0;
  for (const tool of names.filter((n) => n.startsWith("progress") || n.startsWith("logs"))) {
    // The call ends with its answer, or, once its stream passes what an answer and a call's notifications
    // could fill (endlessStreams.e2e), as payload_too_large: either way nothing past the budget crosses the bus.
    const outcome = await agent.callTool({ name: tool }, undefined, { timeout: 30_000, onprogress: () => void heard++ }).then(
      (result) => JSON.stringify(result.content),
      (error: Error) => error.message,
    );
    expect(outcome).toMatch(/sent|returned more than \d+ bytes/);
    // Before: every one of them crossed the bus (47 MB/s in one call), to be dropped at the gateway.
    expect(flooded).toBeGreaterThan(600);
  }
  await new Promise((r) => setTimeout(r, 300));
  expect(onBus.progress).toBeGreaterThan(0);
  expect(onBus.progress).toBeLessThanOrEqual(NOTIFICATION_BYTES_PER_CALL);
  expect(onBus.log).toBeGreaterThan(0);
  expect(onBus.log).toBeLessThanOrEqual(NOTIFICATION_BYTES_PER_CALL);
  expect(heard).toBeGreaterThan(0);
  await observer.close();
});

test("an upstream that connects but cannot list its tools is reported degraded, not up, and discovery does not loop", async () => {
  const health = async () => (await stack.admin.get("/v1/upstreams/flaky")).body.health as { status: string; replicas: { reason?: string }[] } | undefined;
  listsFail = true;
  for (const server of flaky.servers()) await server.sendToolListChanged();
  // Before: health stayed "up" while the connector opened a new session 2.6 times a second, for ever.
  // Waited for with its reason: on a busy machine the upstream may be degraded for another reason
  // first (a slow first listing), which once ended the wait at once and failed the match.
  const degraded = await eventually(async () => {
    const now = await health();
    return now?.status === "degraded" && /its lists cannot be read/.test(now.replicas[0]?.reason ?? "") ? now : undefined;
  }, 10_000, 100);
  expect(degraded.replicas[0]!.reason).toMatch(/its lists cannot be read/);
  // Each failure reconnects, and each reconnect asks for a listing: paced, not 2.6 a second for ever.
  await new Promise((r) => setTimeout(r, 4_000));
  expect(failedLists).toBeLessThanOrEqual(9);
  listsFail = false;
  for (const server of flaky.servers()) await server.sendToolListChanged();
  await eventually(async () => ((await health())?.status === "up" ? true : undefined), 20_000, 100);
});
