import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startHostileUpstream, type HostileUpstream } from "../fixtures/hostileUpstream.js";
import { startWireTap, type WireTap } from "../fixtures/wireTap.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

// An upstream behind a proxy that cannot reach it: every connection accepted, then dropped without
// a byte (`WireTap.drop`). Calls that go through the SDK client (the connector's SDK lane, whose
// `fetch` is `sdkFetch` in transports.ts): a Streamable HTTP upstream's call with a progress token,
// every call to a legacy SSE upstream, and the first call of callers whose own credentials open
// sessions of their own (a new SDK client each). Each must fail at once, as `upstream_unavailable`
// naming the dropped connection, and the upstream be served again within seconds once the proxy
// relays again. Measured 2026-12-06, with Node's bundled fetch in the lane and with undici 7's
// (`sdkFetch`) alike: 24 calls a lane, p50 14-40 ms, max 28-141 ms (new sessions: p50 29-83 ms,
// max 461 ms); served again 1.6-1.8 s after the proxy relayed (the session's backoff).

/** Both the call's budget and the handshake's: a request left unsettled shows as a wait this long. */
const TIMEOUT_MS = 3_000;
/** Calls made while the proxy drops, in bursts of `BURST` at once, `GAP_MS` apart (some land on a reconnection under way). */
const TRIES = 8;
const BURST = 3;
const GAP_MS = 250;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let nats: NatsServer;
let stack: Stack;
let hostile: HostileUpstream;
let everything: SpawnedUpstream;
let taps: Record<Lane, WireTap>;
let names: Record<string, string>;
let agent: DisposableClient;

type Lane = "streamable-http" | "sse";
const TOOL: Record<Lane, { tool: string; arguments: Record<string, unknown> }> = {
  "streamable-http": { tool: "streamable-http/anything", arguments: { fine: true } },
  sse: { tool: "sse/echo", arguments: { message: "hi" } },
};

beforeAll(async () => {
  nats = await startNats();
  // A breaker that never opens: every failure below is the session's own, not a circuit's.
  [stack, hostile, everything] = await Promise.all([
    startStack(nats.url, { CALL_TIMEOUT_MS: String(TIMEOUT_MS), CONNECT_TIMEOUT_MS: String(TIMEOUT_MS), CONNECTOR_BREAKER_THRESHOLD: "1000" }),
    startHostileUpstream(),
    spawnEverything("sse"),
  ]);
  taps = { "streamable-http": await startWireTap(hostile.url), sse: await startWireTap(everything.url) };
  await registerUpstreams(stack, { name: "streamable-http", transport: { type: "streamable-http", url: taps["streamable-http"].url } }, { name: "sse", transport: { type: "sse", url: taps.sse.url } });
  names = await createVirtualServer(stack, "v", [
    { upstream: "streamable-http", tool: "anything" },
    { upstream: "sse", tool: "echo" },
  ]);
  agent = await connectHttp(stack.mcpUrl("v"));
}, 60_000);

afterAll(async () => {
  await agent?.close();
  await stack?.close();
  await Promise.all(Object.values(taps ?? {}).map((tap) => tap.close()));
  await hostile?.close();
  await everything?.stop();
  await nats?.stop();
});

interface Outcome {
  ms: number;
  ok: boolean;
  rpcCode?: number;
  code?: string;
  message?: string;
}

/** One call through the SDK lane (a progress token keeps a Streamable HTTP call off the direct caller). */
async function call(lane: Lane, caller: DisposableClient = agent): Promise<Outcome> {
  const started = Date.now();
  try {
    await caller.callTool({ name: names[TOOL[lane].tool]!, arguments: TOOL[lane].arguments }, undefined, { onprogress: () => undefined, timeout: 4 * TIMEOUT_MS });
    return { ms: Date.now() - started, ok: true };
  } catch (e) {
    const error = e as { code?: number; message: string; data?: { code?: string } };
    return { ms: Date.now() - started, ok: false, rpcCode: error.code, code: error.data?.code, message: error.message };
  }
}

describe("an upstream whose proxy drops every connection, through the SDK lane", () => {
  test.each(["streamable-http", "sse"] as const)("%s: each call fails at once as upstream_unavailable; relayed again, it is served within seconds", async (lane) => {
    expect(await call(lane)).toMatchObject({ ok: true });
    taps[lane].drop(true);
    const outcomes: Outcome[] = [];
    for (let i = 0; i < TRIES; i++) {
      outcomes.push(...(await Promise.all(Array.from({ length: BURST }, () => call(lane)))));
      await sleep(GAP_MS);
    }
    taps[lane].drop(false);
    const relayed = Date.now();
    let served = await call(lane);
    while (!served.ok && Date.now() - relayed < 15_000) {
      await sleep(50);
      served = await call(lane);
    }
    const back = Date.now() - relayed;
    const times = outcomes.map((o) => o.ms).sort((a, b) => a - b);
    console.info(`droppedUpstreamConnections ${lane}: ${outcomes.length} calls failed in p50 ${times[times.length >> 1]} ms, max ${times.at(-1)} ms (${times.join(", ")}); served again ${back} ms after the proxy relayed`);
    for (const o of outcomes) {
      expect(o, JSON.stringify(o)).toMatchObject({ ok: false, rpcCode: -32010, code: "upstream_unavailable" });
      // The upstream named, and why: the dropped connection (its socket error) or the session it closed,
      // or, once the connector's own ping was dropped too, that ping's verdict (the same socket error).
      expect(o.message).toMatch(new RegExp(`upstream '${lane}' (could not be reached|is not connected|closed the connection|cannot be reached: a ping failed)`));
      expect(o.message).toMatch(/UND_ERR_SOCKET|ECONNRESET|other side closed|session closed|closed the connection/);
      // At once: far from the budget a request left unsettled would wait.
      expect(o.ms).toBeLessThan(TIMEOUT_MS / 3);
    }
    expect(served, JSON.stringify(served)).toMatchObject({ ok: true });
    // The session's backoff (250 ms doubling) after about 2.5 s of failed attempts.
    expect(back).toBeLessThan(10_000);
  }, 60_000);

  test("callers with credentials of their own: the first request of each new session fails at once", async () => {
    const lane = "streamable-http";
    taps[lane].drop(true);
    const outcomes: Outcome[] = [];
    for (let i = 0; i < TRIES; i++) {
      outcomes.push(
        ...(await Promise.all(
          Array.from({ length: BURST }, async (_, j) => {
            const headers = { "x-manifold-upstream-headers": JSON.stringify({ [lane]: { Authorization: `Bearer caller-${i}-${j}` } }) };
            await using caller = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("v")), { requestInit: { headers } }));
            return await call(lane, caller);
          }),
        )),
      );
    }
    taps[lane].drop(false);
    const times = outcomes.map((o) => o.ms).sort((a, b) => a - b);
    console.info(`droppedUpstreamConnections new sessions: ${outcomes.length} calls failed in p50 ${times[times.length >> 1]} ms, max ${times.at(-1)} ms (${times.join(", ")})`);
    for (const o of outcomes) {
      expect(o, JSON.stringify(o)).toMatchObject({ ok: false, rpcCode: -32010, code: "upstream_unavailable" });
      expect(o.ms).toBeLessThan(TIMEOUT_MS / 3);
    }
  }, 60_000);
});
