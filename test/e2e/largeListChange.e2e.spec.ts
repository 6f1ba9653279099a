import { RegistryStream } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (review): an upstream's list change was recorded as one event holding its whole list and
// every tool's diff. ~1,000 tools whose descriptions all changed made that event larger than a bus
// message: the registry could not append it, and the change (the drift of every pinned tool) stayed
// invisible for as long as the list did not shrink.

let nats: NatsServer;
let stack: Stack;
let big: SessionServer<Server>;
let observer: NatsConnection;
let jsm: JetStreamManager;
let revision = 1;
/** From revision 3 on, every tool takes an optional argument more: a compatible change. */
const argumentsAt = (r: number) => Object.fromEntries(Array.from({ length: Math.max(0, r - 2) }, (_, i) => [`opt${i}`, { type: "string" }]));
const TOOLS = 1_000;

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url);
  observer = await connectAs(nats, "operator", "observer");
  jsm = await jetstreamManager(observer);
  big = await serveSessions(() => {
    const server = new Server({ name: "big", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: Array.from({ length: TOOLS }, (_, i) => ({
        name: `t${i}`,
        description: `revision ${Math.min(revision, 2)} ${"d".repeat(550)}`,
        inputSchema: { type: "object" as const, properties: argumentsAt(revision) },
      })),
    }));
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "ok" }] }));
    return server;
  });
});

afterAll(async () => {
  await observer?.close();
  await stack?.close();
  await big?.close();
  await nats?.stop();
});

test("attack: a change to every one of 1,000 large tools is recorded, and the pinned tools show their drift", async () => {
  await registerUpstreams(stack, { name: "big", transport: { type: "streamable-http", url: big.url } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "big-vs", tools: [{ upstream: "big", tool: "t0" }, { upstream: "big", tool: "t999" }] });
  expect(created.status).toBe(201);
  revision = 2;
  const discovered = await stack.admin.post("/v1/upstreams/big/discover", {});
  expect(discovered.status, JSON.stringify(discovered.body).slice(0, 500)).toBe(200);
  expect(discovered.body.discovery, JSON.stringify(discovered.body.discovery)).toMatchObject({ status: "ok", changed: true });
  const drift = await stack.admin.get("/v1/virtual-servers/big-vs/drift");
  expect(drift.status).toBe(200);
  // Both pinned tools wait for review, each with its own diff (the review computes it from the definitions).
  const pending = drift.body.items as { exposedName: string; diff: { value?: unknown }[] }[];
  expect(pending.map((d) => d.exposedName).sort(), JSON.stringify(drift.body).slice(0, 300)).toHaveLength(2);
  for (const d of pending) expect(JSON.stringify(d.diff)).toContain("revision 2");
});

// attack (review): the auto-compatible policy appended one event per tool re-pinned, per virtual
// server and environment: one compatible change of this upstream that ten such virtual servers
// select was 10,000 events (3.9 MB) and 514 ms of fold on every node, the upstream's to repeat
// as often as its list-change budget allows.
test("attack: a compatible change to 1,000 tools selected by ten auto-compatible virtual servers is ten events, and every agent sees it", { timeout: 120_000 }, async () => {
  const everyTool = Array.from({ length: TOOLS }, (_, i) => ({ upstream: "big", tool: `t${i}` }));
  const servers = Array.from({ length: 10 }, (_, i) => `auto-${i}`);
  for (const name of servers) {
    const created = await stack.admin.post("/v1/virtual-servers", { name, tools: everyTool, driftPolicy: "auto-compatible" });
    expect(created.status, JSON.stringify(created.body).slice(0, 300)).toBe(201);
  }
  const before = (await jsm.streams.info(RegistryStream.name)).state;
  revision = 3;
  const started = Date.now();
  const discovered = await stack.admin.post("/v1/upstreams/big/discover", {});
  expect(discovered.body.discovery, JSON.stringify(discovered.body.discovery).slice(0, 300)).toMatchObject({ status: "ok", changed: true });
  await using agent = await connectHttp(stack.mcpUrl(servers.at(-1)!));
  const listed = await eventually(async () => {
    const { tools } = await agent.listTools();
    return tools.every((t) => t.inputSchema.properties && "opt0" in t.inputSchema.properties) ? tools : undefined;
  }, 60_000, 200);
  const adoptedInMs = Date.now() - started;
  expect(listed).toHaveLength(TOOLS);
  const after = (await jsm.streams.info(RegistryStream.name)).state;
  // One discovery, then one re-pin event a virtual server (two, were one past a bus message).
  const appended = after.last_seq - before.last_seq;
  const bytes = after.bytes - before.bytes;
  console.log(JSON.stringify({ appended, bytes, adoptedInMs }));
  expect(appended, `${appended} events, ${bytes} bytes, adopted in ${adoptedInMs} ms`).toBeLessThanOrEqual(1 + 2 * servers.length);
  // The re-pins name each definition by its hash and upstream, not copy it: the discovery's event
  // holds the list (~0.6 MB) and its diffs; the ten re-pin events add ~60 KB each. Before: 8.9 MB.
  expect(bytes).toBeLessThan(3_000_000);
  for (const name of servers) expect((await stack.admin.get(`/v1/virtual-servers/${name}/drift`)).body.items).toEqual([]);
});
