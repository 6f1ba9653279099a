import type { NatsServer } from "@manifold/nats-server";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (review): an upstream's list change was recorded as one event holding its whole list and
// every tool's diff. ~1,000 tools whose descriptions all changed made that event larger than a bus
// message: the registry could not append it, and the change (the drift of every pinned tool) stayed
// invisible for as long as the list did not shrink.

let nats: NatsServer;
let stack: Stack;
let big: SessionServer<Server>;
let revision = 1;
const TOOLS = 1_000;

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url);
  big = await serveSessions(() => {
    const server = new Server({ name: "big", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: Array.from({ length: TOOLS }, (_, i) => ({ name: `t${i}`, description: `revision ${revision} ${"d".repeat(550)}`, inputSchema: { type: "object" as const } })),
    }));
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "ok" }] }));
    return server;
  });
});

afterAll(async () => {
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
