import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-97): what an upstream sends of its own, without end. Each message the SDK reads
// costs the connector's one event loop, shared by every upstream and tenant on the replica. Before:
// another upstream's calls went from p50 ~5 ms to 340 ms (a 2025 GET stream of log notifications),
// 1.1 s (of unreadable events), 1.7 s and then 44 of 60 failed as the replica stopped answering the
// bus (a stdio upstream writing log notifications), 60 of 60 failed (a legacy SSE stream of
// unreadable events), 37 ms (of comments only). Now a session that sends more than 10,000 such
// messages in a second is cut at once, and reconnects after a backoff that grows.

const FLOOD_STDIO = new URL("../fixtures/floodStdio.mjs", import.meta.url).pathname;
/** The one stdio command these tests may run (a JSON list of argument lists: see `MANIFOLD_STDIO_COMMANDS`). */
const COMMANDS = JSON.stringify([[process.execPath, FLOOD_STDIO]]);
let nats: NatsServer;
let stack: Stack;
let connector: ServiceProcess;
let good: Awaited<ReturnType<typeof serveModernHttp>>;
const floods: ChildProcess[] = [];

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { MANIFOLD_STDIO_COMMANDS: COMMANDS }, { connector: false });
  // Its own process, as deployed: the flood is measured on the event loop it would starve.
  const port = await freePort();
  connector = spawnService("connector", serviceEntry("connector"), [], { ...busEnv(nats, "connector"), CONNECTOR_PORT: String(port), LOG_LEVEL: "warn", MANIFOLD_STDIO_COMMANDS: COMMANDS }, process.env.FLOOD_LOG);
  await connector.ready(`http://127.0.0.1:${port}/readyz`);
  good = await serveModernHttp();
  await registerUpstreams(stack, { name: "good", transport: { type: "streamable-http", url: good.url } });
  await createVirtualServer(stack, "tenant", [{ upstream: "good", tool: "echo" }]);
}, 60_000);

afterAll(async () => {
  for (const flood of floods) flood.kill();
  await connector?.stop();
  await stack?.close();
  await good?.close();
  await nats?.stop();
});

/** 40 calls of another tenant to another upstream, one after another: their latencies (ms) and failures. */
async function otherTenant(): Promise<{ p50: number; p95: number; failed: string[] }> {
  await using agent = await connectHttp(stack.mcpUrl("tenant"));
  const echo = (await agent.listTools()).tools[0]!.name;
  const took: number[] = [];
  const failed: string[] = [];
  for (let i = 0; i < 40; i++) {
    const started = performance.now();
    await agent.callTool({ name: echo, arguments: { message: "hi" } }).catch((error: Error) => failed.push(error.message));
    took.push(performance.now() - started);
  }
  took.sort((a, b) => a - b);
  return { p50: Math.round(took[20]!), p95: Math.round(took[38]!), failed };
}

/** The reason the connector gives in an upstream's health, once it gives one. */
async function healthReason(name: string, deadlineMs: number): Promise<string | undefined> {
  for (const until = Date.now() + deadlineMs; Date.now() < until; await new Promise((r) => setTimeout(r, 200))) {
    const reason = (await stack.admin.get(`/v1/upstreams/${name}`)).body.health?.replicas?.[0]?.reason as string | undefined;
    if (reason) return reason;
  }
  return undefined;
}

/** A flooding upstream's transport: a fixture process for HTTP ones (its URL on its first line of output). */
async function floodTransport(kind: "stdio" | "streamable-http" | "sse", mode: string): Promise<Record<string, unknown>> {
  if (kind === "stdio") return { type: "stdio", command: process.execPath, args: [FLOOD_STDIO, mode], protocol: "2025" };
  const fixture = new URL(kind === "sse" ? "../fixtures/floodSse.mjs" : "../fixtures/floodUpstream.mjs", import.meta.url).pathname;
  const child = spawn(process.execPath, [fixture, mode], { stdio: ["ignore", "pipe", "inherit"] });
  floods.push(child);
  const [first] = (await once(child.stdout!, "data")) as [Buffer];
  return { type: kind, url: first.toString().trim() };
}

test.each([
  ["stdio", "log", "a stdio upstream writing log notifications"],
  ["stdio", "junk", "a stdio upstream writing lines that are not JSON"],
  ["streamable-http", "log", "a 2025 GET stream of log notifications"],
  ["streamable-http", "junk", "a 2025 GET stream of unreadable events"],
  ["streamable-http", "answer", "a 2025 GET stream of answers to nothing asked"],
  ["streamable-http", "comment", "a 2025 GET stream of comments"],
  ["sse", "junk", "a legacy SSE stream of unreadable events between its answers"],
] as const)("attack: %s upstream flooding '%s' (%s) costs another tenant's calls to another upstream nothing that fails them", async (kind, mode, _what) => {
  const before = await otherTenant();
  const name = `flood-${kind}-${mode}`;
  await registerUpstreams(stack, { name, transport: await floodTransport(kind, mode) } as never).catch(() => undefined);
  try {
    // The flood begins once its session is open (stdio: 0.5 s after `initialized`).
    await new Promise((r) => setTimeout(r, 2_000));
    const during = await otherTenant();
    console.log(JSON.stringify({ kind, mode, before, during }));
    expect(during.failed).toEqual([]);
    // Before: p50 37 ms to 1.7 s, failures; now within a few of the unflooded calls (a loaded CI machine included).
    expect(during.p50).toBeLessThan(Math.max(50, before.p50 * 5));
    expect(connector.child.exitCode).toBeNull();
  } finally {
    expect((await stack.admin.request("DELETE", `/v1/upstreams/${name}`)).status).toBe(204);
  }
}, 60_000);

// The limit is a setting: a server chattier than the default is let be by raising it for that
// upstream alone (`inboundPerSecond`), and a lower one cuts a session the default would keep.
test("an upstream's own inboundPerSecond cuts a session the default lets be, and names its limit", async () => {
  const chatty = (name: string, inboundPerSecond?: number) =>
    registerUpstreams(stack, {
      name,
      transport: { type: "stdio", command: process.execPath, args: [FLOOD_STDIO, "log", "2000"], protocol: "2025" },
      ...(inboundPerSecond ? { options: { inboundPerSecond } } : {}),
    } as never);
  // Below 100 a second no MCP server could say what it must: refused at registration, named.
  const refused = await stack.admin.request("POST", "/v1/upstreams", { name: "chatty-mute", transport: { type: "stdio", command: process.execPath, args: [FLOOD_STDIO], protocol: "2025" }, options: { inboundPerSecond: 10 } });
  expect(refused.status).toBe(400);
  expect(JSON.stringify(refused.body)).toContain("inboundPerSecond");
  await chatty("chatty-default");
  await chatty("chatty-limited", 500);
  try {
    // 2,000 log notifications a second, past the limit of 500 from the first second it sends them.
    expect(await healthReason("chatty-limited", 10_000)).toContain("sent more than 500 messages");
    // The default (10,000) lets the same server be: its session stays up, with no reason to give.
    expect(await healthReason("chatty-default", 1_000)).toBeUndefined();
    expect((await stack.admin.get("/v1/upstreams/chatty-default")).body.health.status).toBe("up");
  } finally {
    for (const name of ["chatty-default", "chatty-limited"]) expect((await stack.admin.request("DELETE", `/v1/upstreams/${name}`)).status).toBe(204);
  }
}, 60_000);
