import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startHostileUpstream, type HostileUpstream } from "../fixtures/hostileUpstream.js";
import { startWireTap, type WireTap } from "../fixtures/wireTap.js";
import { createVirtualServer } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

// A connector process whose first HTTP requests go to an upstream behind a proxy that drops every
// connection (accepted, then destroyed without a byte: `WireTap.drop`), through the SDK lane:
// the session's era probe and `initialize`, and `tools/list` (discovery). The process is started
// with Node's bundled fetch run first (test/fixtures/nodeFetchFirst.mjs), so the dispatcher every
// fetch without one of its own shares is Node's (undici 6.24), as in any process where something
// fetched before the connector's modules loaded. Node's own stack left a request to a dropping
// peer unsettled when it came within ~20 ms of Node loading its fetch (an SDK client then waited
// its whole timeout; `sdkFetch.ts`): the lane now runs on undici 7 whatever loaded first. Each
// tools/list must fail at once, and the upstream be listed within seconds once the proxy relays.
// Measured 2026-12-06, before the change (Node's stack): the first answer (with the registration)
// 290-363 ms, then 7-48 ms, listed again 0.9-1.0 s after; after it: 319-570 ms, 5-22 ms, 0.9-1.5 s.

const NODE_FETCH_FIRST = new URL("../fixtures/nodeFetchFirst.mjs", import.meta.url).pathname;
/** The handshake's bound and a call's budget: a request left unsettled shows as a wait this long. */
const TIMEOUT_MS = 5_000;
const DISCOVERIES = 6;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let nats: NatsServer;
let stack: Stack;
let hostile: HostileUpstream;
let tap: WireTap;
let connector: ServiceProcess;
let dir: string;

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "manifold-dropped-first-"));
  [stack, hostile] = await Promise.all([startStack(nats.url, { DISCOVERY_TIMEOUT_MS: String(4 * TIMEOUT_MS) }, { connector: false }), startHostileUpstream()]);
  tap = await startWireTap(hostile.url);
  tap.drop(true);
  const port = await freePort();
  connector = spawnService(
    "connector",
    serviceEntry("connector"),
    [],
    // A breaker that never opens: every failure below is the session's own, not a circuit's.
    { ...busEnv(nats, "connector"), CONNECTOR_PORT: String(port), LOG_LEVEL: "warn", CONNECT_TIMEOUT_MS: String(TIMEOUT_MS), CALL_TIMEOUT_MS: String(TIMEOUT_MS), CONNECTOR_BREAKER_THRESHOLD: "1000" },
    join(dir, "connector.log"),
    ["--import", NODE_FETCH_FIRST],
  );
  await connector.ready(`http://127.0.0.1:${port}/readyz`);
}, 60_000);

afterAll(async () => {
  await connector?.stop();
  await stack?.close();
  await tap?.close();
  await hostile?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("registered behind a dropping proxy: tools/list fails at once, again and again; relayed, the upstream is listed and called within seconds", async () => {
  const timed = async (send: () => Promise<{ status: number; body: any }>) => {
    const started = Date.now();
    const res = await send();
    return { ms: Date.now() - started, status: res.status, discovery: res.body.discovery };
  };
  const outcomes = [await timed(() => stack.admin.post("/v1/upstreams", { name: "dropped", transport: { type: "streamable-http", url: tap.url } }))];
  for (let i = 1; i < DISCOVERIES; i++) {
    await sleep(200);
    outcomes.push(await timed(() => stack.admin.post("/v1/upstreams/dropped/discover", {})));
  }
  console.info(`droppedFirstRequest: tools/list behind a dropping proxy answered in ${outcomes.map((o) => o.ms).join(", ")} ms: ${outcomes.map((o) => o.discovery?.error?.message).join(" | ")}`);
  for (const o of outcomes) {
    expect(o.status, JSON.stringify(o)).toBeLessThan(300);
    expect(o.discovery, JSON.stringify(o)).toMatchObject({ status: "failed", error: { code: "upstream_unavailable" } });
    // The upstream named, and the dropped connection: its socket error.
    expect(o.discovery.error.message).toMatch(/upstream 'dropped' (is not connected|could not be reached)/);
    expect(o.discovery.error.message).toMatch(/UND_ERR_SOCKET|ECONNRESET|other side closed/);
    // At once: far from the handshake's bound an unsettled request waits (the first answer also
    // holds the registration, and the connector's catching up with it).
    expect(o.ms).toBeLessThan(o === outcomes[0] ? TIMEOUT_MS / 2 : TIMEOUT_MS / 5);
  }

  tap.drop(false);
  const relayed = Date.now();
  let listed = await timed(() => stack.admin.post("/v1/upstreams/dropped/discover", {}));
  while (listed.discovery?.status !== "ok" && Date.now() - relayed < 20_000) {
    await sleep(100);
    listed = await timed(() => stack.admin.post("/v1/upstreams/dropped/discover", {}));
  }
  const back = Date.now() - relayed;
  console.info(`droppedFirstRequest: listed again ${back} ms after the proxy relayed`);
  expect(listed.discovery, JSON.stringify(listed)).toMatchObject({ status: "ok" });
  // The session's backoff (250 ms doubling) after the failed attempts above.
  expect(back).toBeLessThan(10_000);
  const names = await createVirtualServer(stack, "v", [{ upstream: "dropped", tool: "anything" }]);
  await using agent = await connectHttp(stack.mcpUrl("v"));
  // A progress token keeps the call on the SDK lane.
  const result = await agent.callTool({ name: names["dropped/anything"]!, arguments: { fine: true } }, undefined, { onprogress: () => undefined });
  expect(result.structuredContent).toEqual({ fine: true });
}, 60_000);
