import { RegistryStream } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// What a registered upstream may do to everyone else by talking too much: announce list changes
// without end (each discovery that finds a change appends the whole list to the registry's
// stream, which keeps every event).

let nats: NatsServer;
let stack: Stack;
let storm: SessionServer<Server>;
/** Bumped for every announced change: the list really changes each time. */
let revision = 0;

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
  await registerUpstreams(stack, { name: "storm", transport: { type: "streamable-http", url: storm.url } });
  await createVirtualServer(stack, "stormy", [{ upstream: "storm", tool: "t0" }]);
});

afterAll(async () => {
  await stack?.close();
  await storm?.close();
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
  expect(announced).toBeGreaterThan(300);
  expect(events).toBeGreaterThan(0);
  expect(events).toBeLessThanOrEqual(8);
  // The drift is still seen: the virtual server's pinned tool has drifted.
  const drift = await stack.admin.get("/v1/virtual-servers/stormy/drift");
  expect(drift.status).toBe(200);
  expect(JSON.stringify(drift.body)).toContain("revision");
  await observer.close();
});
