import { freePort, type NatsServer } from "@manifold/nats-server";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, test } from "vitest";
import { growingServer, type GrowingServer } from "../helpers/growingServer.js";
import { eventually } from "../helpers/mcp.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnModernUpstream } from "../helpers/upstreams.js";

/**
 * Probe (helper-164): the connector's subscriptions/listen to a 2026-07-28 upstream, across that
 * upstream's SIGKILL and restart on the same port (no defect found: the stream is opened again).
 */
let nats: NatsServer;
let stack: Stack;
let port: number;
let upstream: ChildProcess;
let served: GrowingServer;

beforeAll(async () => {
  nats = await startNats();
  port = await freePort();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), spawnModernUpstream(port)]);
  served = await growingServer(stack, `http://127.0.0.1:${port}/mcp`);
}, 60_000);

afterAll(async () => {
  upstream?.kill("SIGKILL");
  await stack?.close();
  await nats?.stop();
});

const grownWithin = async (url: string, property: string) => {
  const t0 = Date.now();
  await modernRequest(url, served.key, "tools/call", { name: served.names["m/grow"], arguments: { property } });
  return eventually(async () => ((await served.echoTakes(property)) ? true : undefined), 15_000, 200).then(() => Date.now() - t0, () => undefined);
};

test("a list change made by a restarted 2026-07-28 upstream reaches the catalog within seconds", async () => {
  const url = stack.mcpUrl("v");
  upstream.kill("SIGKILL");
  await new Promise((r) => upstream.once("exit", r));
  upstream = await spawnModernUpstream(port);
  // Calls work again.
  await eventually(async () => ((await modernRequest(url, served.key, "tools/call", { name: served.names["m/echo"], arguments: { message: "x" } })).result?.content ? true : undefined), 15_000, 200);
  const grown = await grownWithin(url, "loud");
  console.info(`modernUpstreamListenRestart: change after the upstream restart reached the list ${grown === undefined ? "never (15 s)" : `in ${grown} ms`}`);
  expect(grown).toBeDefined();
}, 60_000);
