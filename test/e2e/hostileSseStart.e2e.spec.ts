import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { endpointBounded } from "@manifold/connector";
import { SSEClientTransport } from "@modelcontextprotocol/client";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (HTTP transports review, helper-105): a legacy SSE upstream answers the connector's GET with an
// event stream and never sends its `endpoint` event. The SDK's SSE transport waits for that event
// with no bound, and closing the transport does not end the wait: the connection attempt, and
// whatever awaits it, never ends.
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let modern: Awaited<ReturnType<typeof serveModernHttp>>;
let silent: string;

beforeAll(async () => {
  nats = await startNats();
  child = spawn(process.execPath, [new URL("../fixtures/silentSse.mjs", import.meta.url).pathname, "comments"], { stdio: ["ignore", "pipe", "inherit"] });
  const [first] = await once(child.stdout!, "data");
  silent = String(first).trim();
  [stack, modern] = await Promise.all([startStack(nats.url, { DISCOVERY_TIMEOUT_MS: "3000" }), serveModernHttp()]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await modern?.close();
  child?.kill();
  await nats?.stop();
}, 60_000);

test("attack: an SSE upstream that never names its endpoint does not hold the connector's later registrations", async () => {
  const registered = await stack.admin.post("/v1/upstreams", { name: "silent", transport: { type: "sse", url: silent } });
  expect(registered.status, JSON.stringify(registered.body)).toBeLessThan(300);
  expect(registered.body.discovery?.status).toBe("failed");
  // The operator removes the misbehaving upstream, then registers another.
  expect((await stack.admin.request("DELETE", "/v1/upstreams/silent")).status).toBeLessThan(300);
  const good = await stack.admin.post("/v1/upstreams", { name: "good", transport: { type: "streamable-http", url: modern.url } });
  expect(good.status, JSON.stringify(good.body)).toBeLessThan(300);
  // Before: the connector's reconciliation waited on the silent upstream's connection attempt for
  // good, so no later registration was served (discovery failed: nobody answered).
  expect(good.body.discovery?.status, JSON.stringify(good.body.discovery)).toBe("ok");
}, 60_000);

test("a connection attempt whose upstream never names its endpoint fails at its bound (the session backs off and tries again)", async () => {
  const transport = endpointBounded(new SSEClientTransport(new URL(silent)), 300);
  const started = Date.now();
  // Before: the SDK's start waited for the endpoint for good.
  await expect(transport.start()).rejects.toThrow(/did not name its SSE endpoint within 300 ms/);
  expect(Date.now() - started).toBeLessThan(5_000);
});

/**
 * The handshake's bound, `CONNECT_TIMEOUT_MS`, bounded the SDK's `initialize` only: the wait for the
 * endpoint came before it, bounded by a fixed 60 s. An upstream that opened its stream and never
 * named its endpoint stayed `degraded`, "connecting", with no reason and no other attempt, for a
 * minute per attempt, whatever `CONNECT_TIMEOUT_MS` said (as a stdio upstream that never answered
 * `initialize` once did: upstreamCrashLoop.e2e).
 */
test("a legacy SSE upstream that never names its endpoint: each attempt ends at CONNECT_TIMEOUT_MS, health down saying why", async () => {
  const nats2 = await startNats();
  const bounded = await startStack(nats2.url, { CONNECT_TIMEOUT_MS: "1000", HEALTH_HEARTBEAT_MS: "200", DISCOVERY_TIMEOUT_MS: "3000" });
  try {
    const started = Date.now();
    await bounded.admin.post("/v1/upstreams", { name: "silent", transport: { type: "sse", url: silent } });
    const health = await eventually(async () => {
      const now = (await bounded.admin.get("/v1/upstreams/silent")).body.health;
      return now?.status === "down" ? now : undefined;
    }, 8_000, 100);
    // Before: still "connecting" after 8 s (the first attempt waits 60 s).
    expect(Date.now() - started).toBeLessThan(6_000);
    expect(health.replicas[0].reason).toMatch(/did not name its SSE endpoint within 1000 ms \(CONNECT_TIMEOUT_MS\)/);
  } finally {
    await bounded.close();
    await nats2.stop();
  }
}, 30_000);

// attack (helper-105): the EventSource under the SDK's SSE transport opens a dropped stream again after what the
// upstream's `retry:` says. Before: `retry: 0` and streams that end at once made 1,166 GETs in 3 s, for good.
test("attack: a legacy SSE upstream ending its stream with retry: 0 is not asked again in a loop", async () => {
  const loop = spawn(process.execPath, [new URL("../fixtures/retryZeroSse.mjs", import.meta.url).pathname], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const [first] = await once(loop.stdout!, "data");
    const url = String(first).trim();
    const registered = await stack.admin.post("/v1/upstreams", { name: "loop", transport: { type: "sse", url } });
    expect(registered.body.discovery?.status, JSON.stringify(registered.body)).toBe("ok");
    const count = async () => Number(await (await fetch(new URL("/count", url))).text());
    const before = await count();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const gets = (await count()) - before;
    expect(gets).toBeLessThan(5);
  } finally {
    loop.kill();
  }
});
