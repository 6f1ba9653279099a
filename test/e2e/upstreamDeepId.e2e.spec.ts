import type { NatsServer } from "@manifold/nats-server";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort } from "@manifold/nats-server";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

const FIXTURE = new URL("../fixtures/hostileAnswerUpstream.mjs", import.meta.url).pathname;
let nats: NatsServer; let stack: Stack; let child: ChildProcess; let conn: ServiceProcess; let connPort = 0; let calm: SessionServer<Server>;
let names: Record<string, string>;
beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, {}, { connector: false });
  connPort = await freePort();
  conn = spawnService("connector-x", serviceEntry("connector"), [], { ...busEnv(nats, "connector"), CONNECTOR_REPLICA_ID: "x", CONNECTOR_PORT: String(connPort), LOG_LEVEL: "warn" });
  await conn.ready(`http://127.0.0.1:${connPort}/readyz`);
  calm = await serveSessions(() => {
    const server = new Server({ name: "calm", version: "1.0.0" }, { capabilities: { tools: {} } });
    server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: [{ name: "ping", inputSchema: { type: "object" as const } }] }));
    server.setRequestHandler(CallToolRequestSchema, () => ({ content: [{ type: "text" as const, text: "pong" }] }));
    return server;
  });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ANSWER: "deep-id" } });
  const [first] = await once(child.stdout!, "data");
  await registerUpstreams(stack, { name: "calm", transport: { type: "streamable-http", url: calm.url } }, { name: "d", transport: { type: "streamable-http", url: String(first).trim() } });
  names = await createVirtualServer(stack, "v", [{ upstream: "d", tool: "deep" }, { upstream: "calm", tool: "ping" }]);
}, 60_000);
afterAll(async () => { child?.kill(); await conn?.stop(); await stack?.close(); await calm?.close(); await nats?.stop(); });

// attack (helper-92): the answer to a hostile upstream's request was stringified with its id, nested
// 100,000 deep, outside any catch: the stack overflowed and the connector process ended.
test("attack: a server-to-client request whose id nests 100,000 deep, on a call's stream, leaves the connector serving", async () => {
  const client = await connectHttp(stack.mcpUrl("v"));
  expect(await client.callTool({ name: names["calm/ping"]!, arguments: {} }).then(() => "ok", (e: Error) => e.message)).toBe("ok");
  const r = await client.callTool({ name: names["d/deep"]!, arguments: {} }).then((x) => JSON.stringify(x), (e: Error) => "ERR " + e.message);
  await new Promise((res) => setTimeout(res, 1000));
  const alive = await fetch(`http://127.0.0.1:${connPort}/readyz`).then((x) => x.status, (e: Error) => "DEAD " + e.message);
  const calmAfter = await client.callTool({ name: names["calm/ping"]!, arguments: {} }, undefined, { timeout: 5000 }).then(() => "ok", (e: Error) => e.message);
  expect(r, "the call itself still ends").not.toBe("");
  expect(alive).toBe(200);
  expect(calmAfter).toBe("ok");
}, 60_000);
