import { freePort, type NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { growingServer, type GrowingServer } from "../helpers/growingServer.js";
import { eventually } from "../helpers/mcp.js";
import { MODERN, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnModernUpstream } from "../helpers/upstreams.js";

/**
 * A 2026-07-28 agent's `subscriptions/listen` stream on the gateway while nats-server is killed and
 * restarted on its port and store (helper-176), and a 2026-07-28 upstream whose tool list changes
 * while the bus is down: the stream stays open, and the change reaches it once the bus is back.
 */
let natsPort: number;
let storeDir: string;
let nats: NatsServer;
let stack: Stack;
let upstreamPort: number;
let upstream: ChildProcess;
let served: GrowingServer;

beforeAll(async () => {
  [natsPort, upstreamPort] = await Promise.all([freePort(), freePort()]);
  storeDir = await mkdtemp(join(tmpdir(), "manifold-listen-restart-"));
  nats = await startNats({ port: natsPort, storeDir });
  [stack, upstream] = await Promise.all([startStack(nats, { GATEWAY_AUTH: "required" }), spawnModernUpstream(upstreamPort)]);
  served = await growingServer(stack, `http://127.0.0.1:${upstreamPort}/mcp`);
}, 60_000);

afterAll(async () => {
  upstream?.kill("SIGKILL");
  await stack?.close();
  await nats?.stop();
  await rm(storeDir, { recursive: true, force: true });
});

test("an upstream's list change made while nats-server is down reaches an open listen stream once it is back", async () => {
  const { key, echoTakes } = served;
  const agent = new ModernClient({ name: "listener", version: "1" }, { versionNegotiation: { mode: { pin: MODERN } } });
  await agent.connect(new ModernTransport(new URL(stack.mcpUrl("v")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  let heard = 0;
  let closedWith: unknown;
  agent.setNotificationHandler("notifications/tools/list_changed", () => void heard++);
  agent.onerror = (error) => (closedWith ??= error);
  const subscription = await agent.listen({ toolsListChanged: true });
  expect(subscription.honoredFilter).toMatchObject({ toolsListChanged: true });

  // The upstream changes its list (asked directly: calls through Manifold need the bus), and tells
  // the connector on its own listen stream. With the bus up, that reaches the agent's stream.
  const grow = (property: string) => modernRequest(`http://127.0.0.1:${upstreamPort}/mcp`, "none", "tools/call", { name: "grow", arguments: { property } });
  expect((await grow("quiet")).result?.content).toBeDefined();
  await eventually(async () => ((await echoTakes("quiet")) && heard > 0 ? true : undefined), 10_000, 100);
  heard = 0;

  nats.process.kill("SIGKILL");
  await new Promise((r) => nats.process.once("exit", r));
  // Now while the connector cannot tell the registry.
  expect((await grow("loud")).result?.content).toBeDefined();
  await new Promise((r) => setTimeout(r, 3_000));

  nats = await startNats({ port: natsPort, storeDir });
  const restartedAt = Date.now();
  const adopted = await eventually(async () => ((await echoTakes("loud")) ? Date.now() - restartedAt : undefined), 20_000, 200).catch(() => undefined);
  const told = await eventually(() => (heard > 0 ? Date.now() - restartedAt : undefined), 5_000, 50).catch(() => undefined);
  console.info(`listenAcrossBusRestart: change made while the bus was down adopted ${adopted === undefined ? "never (20 s)" : `${adopted} ms`} after the restart; the listen stream told ${told === undefined ? "never" : `${told} ms`} after; stream error: ${String(closedWith)}`);
  expect(adopted).toBeDefined();
  expect(told).toBeDefined();
  expect(adopted!).toBeLessThan(10_000);
  await subscription.close();
  await agent.close();
}, 90_000);
