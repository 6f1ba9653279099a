import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack5: a grant's `rateLimitPerMinute` and `GATEWAY_MAX_CALLS_PER_PRINCIPAL` count only
// `tools/call` (mcpRoutes.ts counted tools/call only). resources/read, prompts/get and
// completion/complete go to the upstream's SHARED session just the same, and hold the answer in
// the gateway until the client reads it, but pass neither the rate limit nor the in-flight bound.

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "m", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const FIXTURE = new URL("../fixtures/slowItemsUpstream.mjs", import.meta.url).pathname;
const MAX_CALLS = 16;
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let tight: ChildProcess | undefined;
let upstreamUrl: string;
let promptName: string;
const keys: Record<string, string> = {};

const stats = async () => (await (await fetch(upstreamUrl.replace(/\/mcp$/, "/stats"))).json()) as { methods: Record<string, number>; running: number; maxRunning: number };
const url = () => stack.mcpUrl("docs");
/** A 2026-07-28 request whose `Mcp-Name` names what it asks for (a URI, a prompt). */
const item = async (key: string, method: string, params: Record<string, any>, name?: string, at = url()) => {
  const res = await fetch(at, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": method, ...(name ? { "mcp-name": name } : {}) },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: META } }),
  });
  const text = await res.text();
  const last = JSON.parse(text.startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).at(-1)!.slice(5));
  return { status: res.status, result: last.result, error: last.error };
};

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_CALLS_PER_PRINCIPAL: String(MAX_CALLS) });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SLOW_MS: "3000" } });
  const [first] = await once(child.stdout!, "data");
  upstreamUrl = String(first).trim();
  await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: upstreamUrl } });
  const created = await stack.admin.post("/v1/virtual-servers", {
    name: "docs",
    tools: [{ upstream: "docs", tool: "echo" }],
    resources: ["one", "big", "slow"].map((n) => ({ upstream: "docs", uri: `att://r/${n}` })),
    prompts: [{ upstream: "docs", prompt: "p" }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  promptName = created.body.prompts[0].exposedName;
  for (const [name, limit] of [["mallory", 3], ["victim", undefined]] as const) {
    await stack.admin.post("/v1/consumers", { name });
    keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
    const grant = await stack.admin.post("/v1/virtual-servers/docs/grants", { grantId: name, subject: { consumer: name }, ...(limit ? { rateLimitPerMinute: limit } : {}) });
    expect(grant.status, JSON.stringify(grant.body)).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  child?.kill();
  tight?.kill();
  await stack?.close();
  await nats?.stop();
});

describe("work that reaches a shared upstream outside tools/call is metered like a call", () => {
  test("a consumer limited to 3 calls a minute cannot send 90 resources/read, prompts/get and completion/complete upstream in that minute", async () => {
    // The limit is real for tools/call: the 4th call in the minute is refused.
    const calls = [];
    for (let i = 0; i < 4; i++) calls.push(await modernRequest(url(), keys.mallory!, "tools/call", { name: "docs__echo", arguments: {} }));
    const refusedCalls = calls.filter((c) => c.error?.data?.code === "rate_limited").length;
    const before = (await stats()).methods;
    const started = Date.now();
    const answers = [];
    for (let i = 0; i < 30; i++) {
      answers.push(await item(keys.mallory!, "resources/read", { uri: "docs+att://r/one" }, "docs+att://r/one"));
      answers.push(await item(keys.mallory!, "prompts/get", { name: promptName, arguments: { x: "1" } }, promptName));
      answers.push(await item(keys.mallory!, "completion/complete", { ref: { type: "ref/prompt", name: promptName }, argument: { name: "x", value: "" } }));
    }
    const after = (await stats()).methods;
    const reached = ["resources/read", "prompts/get", "completion/complete"].map((m) => (after[m] ?? 0) - (before[m] ?? 0));
    const upstream = reached.reduce((a, b) => a + b, 0);
    const served = answers.filter((a) => a.result !== undefined).length;
    const figures = `tools/call: ${refusedCalls} of 4 refused as rate_limited; then in ${Date.now() - started} ms ${served} of 90 item requests served, ${upstream} reached the shared upstream session (read ${reached[0]}, prompts/get ${reached[1]}, complete ${reached[2]}) under a limit of 3 a minute`;
    // Measured 2026-12-01: tools/call 1 of 4 refused; in 816 ms 90 of 90 item requests served, 90 reached the upstream.
    expect(refusedCalls, figures).toBe(1);
    expect(upstream, figures).toBeLessThanOrEqual(3);
  }, 60_000);

  test("one consumer cannot hold more than GATEWAY_MAX_CALLS_PER_PRINCIPAL resources/read in flight at once", async () => {
    // 2025 or 2026-07-28 alike: 100 reads of a resource the upstream answers after 3 s, at once.
    const before = (await stats()).maxRunning;
    const reads = Array.from({ length: 100 }, () => item(keys.victim!, "resources/read", { uri: "docs+att://r/slow" }, "docs+att://r/slow"));
    await new Promise((r) => setTimeout(r, 1_500));
    const running = (await stats()).maxRunning;
    const answers = await Promise.all(reads);
    const refused = answers.filter((a) => a.status === 429 || a.error?.data?.code === "too_many_calls").length;
    const ok = answers.filter((a) => a.result !== undefined).length;
    const figures = `100 concurrent reads by one consumer: ${ok} served, ${running} ran at the upstream at once (before: ${before}), ${refused} refused as too_many_calls; bound is ${MAX_CALLS}`;
    // Measured 2026-12-01: 100 served, 100 ran at the upstream at once, 0 refused.
    expect(running, figures).toBeLessThanOrEqual(MAX_CALLS);
    expect(refused, figures).toBeGreaterThanOrEqual(100 - MAX_CALLS);
  }, 60_000);
  // attack (helper-95): a read whose client went away was released from the caller's bound at once,
  // though it ran on upstream: 200 reads, each abandoned after 50 ms, were all sent (bound 16).
  test("reads whose clients went away still count against the caller's bound until the upstream answers", async () => {
    await new Promise((r) => setTimeout(r, 3_500)); // the reads of the tests before have ended
    const uri = "docs+att://r/slow";
    for (let i = 0; i < 40; i++) {
      const abandon = new AbortController();
      void fetch(url(), {
        method: "POST",
        signal: abandon.signal,
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${keys.victim!}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "resources/read", "mcp-name": uri },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "resources/read", params: { uri, _meta: META } }),
      }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 30));
      abandon.abort();
    }
    await new Promise((r) => setTimeout(r, 500));
    const { running } = await stats();
    // Before: all 40 running upstream at once. Now at most the caller's bound.
    expect(running, `${running} abandoned reads running upstream at once (bound ${MAX_CALLS})`).toBeLessThanOrEqual(MAX_CALLS);
    await new Promise((r) => setTimeout(r, 3_500));
  }, 30_000);
});

describe("an upstream's maxConcurrency bounds every request held open on it, not only calls", () => {
  // attack: reads, prompts and task requests took none of the upstream's slots, so one caller (or
  // many) held any number of them open on an upstream an operator had bounded to 2.
  test("8 slow reads at once reach an upstream allowed 2 at most 2 at a time, and all are answered", async () => {
    tight = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SLOW_MS: "600" } });
    const [first] = await once(tight.stdout!, "data");
    const tightUrl = String(first).trim();
    await registerUpstreams(stack, { name: "tight", transport: { type: "streamable-http", url: tightUrl }, options: { maxConcurrency: 2 } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "tight", tools: [{ upstream: "tight", tool: "echo" }], resources: [{ upstream: "tight", uri: "att://r/slow" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const grant = await stack.admin.post("/v1/virtual-servers/tight/grants", { grantId: "victim", subject: { consumer: "victim" } });
    expect(grant.status, JSON.stringify(grant.body)).toBe(201);
    const uri = "tight+att://r/slow";
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 8 }, () => item(keys.victim!, "resources/read", { uri }, uri, stack.mcpUrl("tight"))));
    const tightStats = (await (await fetch(tightUrl.replace(/\/mcp$/, "/stats"))).json()) as { maxRunning: number };
    const served = answers.filter((a) => a.result?.contents !== undefined).length;
    const figures = `8 reads of a 600 ms resource: ${served} served in ${Date.now() - started} ms, at most ${tightStats.maxRunning} at the upstream at once (maxConcurrency 2)`;
    // Measured before the fix: 8 served in ~650 ms, 8 at the upstream at once.
    expect(tightStats.maxRunning, figures).toBe(2);
    expect(served, figures).toBe(8);
  }, 60_000);

  // attack (helper-95): item requests carried no caller, so at the connector every tenant's reads
  // were one caller's: one tenant's queue of slow reads was served before anyone else's read.
  test("one consumer's queue of slow reads on an upstream allowed 2 does not hold another consumer's read behind it", async () => {
    await stack.admin.post("/v1/consumers", { name: "hog" });
    const hog = (await stack.admin.post("/v1/consumers/hog/keys", {})).body.key as string;
    expect((await stack.admin.post("/v1/virtual-servers/tight/grants", { grantId: "hog", subject: { consumer: "hog" } })).status).toBe(201);
    const uri = "tight+att://r/slow";
    const hogs = Array.from({ length: MAX_CALLS }, () => item(hog, "resources/read", { uri }, uri, stack.mcpUrl("tight")));
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const victim = await item(keys.victim!, "resources/read", { uri }, uri, stack.mcpUrl("tight"));
    const waited = Date.now() - started;
    await Promise.all(hogs);
    const figures = `the victim's read of a 600 ms resource took ${waited} ms behind ${MAX_CALLS} of another consumer's (2 at a time)`;
    // Before: in line behind all of them, ~8 rounds of 600 ms (about 5 s). Now: the next slot freed.
    expect(victim.result?.contents, figures).toBeDefined();
    expect(waited, figures).toBeLessThan(3_000);
  }, 60_000);
});
