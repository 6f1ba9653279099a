import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack1: an upstream's server-to-client requests (roots/list, elicitation/create, sampling/...)
// are answered by the connector one HTTP POST each, with no bound on how many a call (or the
// session's GET stream) may carry, nor on how many answers may be in flight at once. Every
// request is ~45 bytes of SSE; each answer held by the upstream (never read) keeps ~2.2 KB of
// the connector's heap (undici's queue) or one socket (the SDK's global fetch, no connection cap).
// The services run in this process; the upstream is a child process, so its memory is not counted.

const FIXTURE = new URL("../fixtures/hostileItemsUpstream.mjs", import.meta.url).pathname;
const MiB = 1024 * 1024;
const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;

interface Stats {
  answersReceived: number;
  held: number;
  openSockets: number;
  maxOpenSockets: number;
  requestsWritten: number;
}

let nats: NatsServer;
let stack: Stack;
let modern: Awaited<ReturnType<typeof serveModernHttp>>;
let echo: string;
const children: ChildProcess[] = [];

/**
 * Starts the hostile upstream as a child process and registers it as `name`; returns its stats
 * reader. `discovered: false`: its discovery may fail (a session cut for flooding), and no virtual server is made.
 */
async function hostile(name: string, env: Record<string, string>, discovered = true): Promise<{ stats: () => Promise<Stats>; ask: string }> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ...env } });
  children.push(child);
  const [first] = await once(child.stdout!, "data");
  const url = String(first).trim();
  const stats = async () => (await fetch(url.replace(/\/mcp$/, "/stats"))).json() as Promise<Stats>;
  if (!discovered) {
    expect((await stack.admin.post("/v1/upstreams", { name, transport: { type: "streamable-http", url } })).status).toBe(201);
    return { ask: "", stats };
  }
  await registerUpstreams(stack, { name, transport: { type: "streamable-http", url } });
  const ask = (await createVirtualServer(stack, name, [{ upstream: name, tool: "ask" }]))[`${name}/ask`]!;
  return { ask, stats };
}

/** Another tenant calling a well-behaved upstream in a loop until `stop`; resolves with its latencies. */
function tenantLoop(): { stop: () => Promise<number[]> } {
  let running = true;
  const latencies: number[] = [];
  const started = performance.now();
  const done = (async () => {
    await using tenant = await connectHttp(stack.mcpUrl("tenant"));
    while (running) {
      const started = performance.now();
      await tenant.callTool({ name: echo, arguments: { message: "hi" } }).catch(() => undefined);
      latencies.push(performance.now() - started);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      // The window's mean time per call (calls run one after another), then every latency sorted.
      const mean = (performance.now() - started) / Math.max(latencies.length, 1);
      return [mean, ...latencies.sort((a, b) => a - b)];
    },
  };
}
const mean = (measured: number[]) => measured[0]!;
const p50 = (measured: number[]) => measured.slice(1)[(measured.length - 1) >> 1] ?? NaN;
const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  nats = await startNats();
  [stack, modern] = await Promise.all([startStack(nats.url, { CALL_TIMEOUT_MS: "30000" }), serveModernHttp()]);
  await registerUpstreams(stack, { name: "good", transport: { type: "streamable-http", url: modern.url } });
  echo = (await createVirtualServer(stack, "tenant", [{ upstream: "good", tool: "echo" }]))["good/echo"]!;
}, 60_000);

afterAll(async () => {
  // The upstream first: the answers it holds keep the connector's sockets (and its close) waiting.
  for (const child of children) child.kill("SIGKILL");
  await stack?.close();
  await modern?.close();
  await nats?.stop();
}, 60_000);

describe("server-to-client requests flooded on a 2025 session's GET stream (no call running)", () => {
  test("answers in flight to one upstream are bounded: 5,000 requests must not open 5,000 sockets", async () => {
    // The shared session opens its GET stream as it connects (registration): the upstream floods
    // it at once. No agent needs to do anything.
    const before = process.memoryUsage().heapUsed;
    // Now more than 10,000 of them in a second cut the session (`upstreamFloods.e2e`): it is opened
    // again after a backoff, and fewer are ever answered; the bound on sockets holds either way.
    const evil = await hostile("getflood", { GET_FLOOD: "5000", HOLD_ANSWERS: "1" }, false);
    let stats = await evil.stats();
    for (let i = 0; i < 50 && stats.answersReceived < 5_000; i++) {
      await settle(100);
      stats = await evil.stats();
    }
    await settle(1_000);
    stats = await evil.stats();
    const grown = process.memoryUsage().heapUsed - before;
    // Measured 2026-12-01 (run first, alone): 5,016 sockets open at once from the connector to the upstream (every
    // answer is its own fetch on Node's global dispatcher, which has no connection cap), +86 MiB
    // of heap, and it goes on for as long as the upstream writes: with this machine's
    // `ulimit -n` of 20,000 a few more seconds exhaust the connector's file descriptors (NATS,
    // every other upstream).
    const figures = `${stats.maxOpenSockets} sockets open at once from the connector for ${stats.requestsWritten} requests (${stats.held} answers held), heap +${mib(grown)}`;
    expect(stats.maxOpenSockets, figures).toBeLessThanOrEqual(256);
    expect(grown, figures).toBeLessThan(64 * MiB);
  }, 120_000);
});

describe("server-to-client requests flooded on one call's stream (2025 Streamable HTTP, the direct path)", () => {
  test("answers the upstream never reads are bounded: 100,000 roots/list requests in one call must not pile up in the connector", async () => {
    const evil = await hostile("hold", { HOLD_ANSWERS: "1" });
    await using agent = await connectHttp(stack.mcpUrl("hold"));
    const before = process.memoryUsage().heapUsed;
    const result = await agent.callTool({ name: evil.ask, arguments: { count: 100_000, waitMs: 2_000 } }, undefined, { timeout: 60_000 }).then(
      (r) => JSON.stringify(r),
      (e: Error) => e.message,
    );
    await settle(2_000);
    const grown = process.memoryUsage().heapUsed - before;
    const stats = await evil.stats();
    // Measured 2026-12-01: the call answered normally; 128 answers went out (the pool's
    // connections, all held), the other ~99,872 stayed queued in the connector: +221 MiB of heap
    // from ~4.5 MB the upstream wrote, kept until the upstream lets go. A call's stream may carry
    // 16 MiB besides its answer, ~370,000 such requests, ~800 MiB per call.
    expect(
      grown,
      `heap +${mib(grown)} after one call whose upstream sent ${stats.requestsWritten} requests and held ${stats.held} answers (call: ${result.slice(0, 120)})`,
    ).toBeLessThan(64 * MiB);
  }, 120_000);

  test("answers are sent for a bounded number of requests per call, and another tenant is not slowed", async () => {
    const evil = await hostile("prompt", {});
    await using agent = await connectHttp(stack.mcpUrl("prompt"));
    const baseline = tenantLoop();
    await settle(2_000);
    const quiet = await baseline.stop();
    const during = tenantLoop();
    const result = await agent.callTool({ name: evil.ask, arguments: { count: 100_000, waitMs: 2_000 } }, undefined, { timeout: 60_000 }).then(
      (r) => JSON.stringify(r),
      (e: Error) => e.message,
    );
    await settle(1_000);
    const loaded = await during.stop();
    const stats = await evil.stats();
    const figures = `the connector POSTed ${stats.answersReceived} answers for one call's ${stats.requestsWritten} requests (the agent declared no capability: every one is refused); another tenant's echo: mean ${mean(quiet).toFixed(1)} ms per call quiet, ${mean(loaded).toFixed(1)} ms during (p50 ${p50(quiet).toFixed(1)} -> ${p50(loaded).toFixed(1)} ms, max ${loaded.at(-1)?.toFixed(0)} ms); call: ${result.slice(0, 80)}`;
    // Measured 2026-12-01 (three runs): 5,374-36,537 answers POSTed within the call and 1 s after
    // (all 100,000 in the end); another tenant's calls through the same services: run alone, mean
    // 13.2 -> 667.8 ms per call (p50 6.4 -> 524 ms, max 1,582 ms); in the whole file p50 3 -> 26 ms
    // and 5.6 -> 69 ms, max 627-939 ms. MAX_INPUT_ROUNDS is 8; a call whose
    // upstream asks far more is misbehaving and can be failed.
    expect(stats.answersReceived, figures).toBeLessThanOrEqual(1_000);
    expect(mean(loaded), figures).toBeLessThan(Math.max(3 * mean(quiet), 15));
  }, 120_000);
});
