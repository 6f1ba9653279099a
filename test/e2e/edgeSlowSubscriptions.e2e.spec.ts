import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { listenOnce, postAlone, rawSession } from "../helpers/itemStreams.js";
import { BusHeader, Subjects } from "@manifold/contracts";
import { busRequest } from "@manifold/bus";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-150): every request a connector holds open on an upstream takes one of its
// `maxConcurrency` slots (reads, prompts, completions, task requests: edgeUnmeteredItems.e2e), but
// `resources/subscribe` took none: "a subscription is bounded by its shares, and holds nothing
// open". It holds the upstream's request open until the upstream answers, and a URI its caller
// already holds is asked for again, so neither shares nor slots bounded subscriptions in flight.
// One consumer's 2025 sessions or 2026-07-28 listen streams, each subscribing one URI, ran as many
// subscriptions at once on an upstream an operator had bounded to 2 (measured below).

const FIXTURE = new URL("../fixtures/slowItemsUpstream.mjs", import.meta.url).pathname;
const URI = "tight+att://r/one";
const AT_ONCE = 12;
let nats: NatsServer;
let stack: Stack;
let child: ChildProcess;
let upstreamUrl: string;
let toolName: string;
let keys: Record<string, string> = {};

const stats = async () => (await (await fetch(upstreamUrl.replace(/\/mcp$/, "/stats"))).json()) as { methods: Record<string, number>; running: number; maxRunning: number };
const url = () => stack.mcpUrl("tight");

const session = (key: string) => rawSession(url(), key);
const listen = (key: string, uris: string[]) => listenOnce(url(), key, uris);

beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SLOW_SUBSCRIBE_MS: "600" } });
  const [first] = await once(child.stdout!, "data");
  upstreamUrl = String(first).trim();
  await registerUpstreams(stack, { name: "tight", transport: { type: "streamable-http", url: upstreamUrl }, options: { maxConcurrency: 2 } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "tight", tools: [{ upstream: "tight", tool: "echo" }], resources: [{ upstream: "tight", uri: "att://r/one" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  toolName = created.body.tools[0].exposedName;
  keys = await grantedConsumers(stack, "tight", ["mallory", "eve"]);
}, 60_000);

afterAll(async () => {
  child?.kill();
  await stack?.close();
  await nats?.stop();
});

describe("an upstream's maxConcurrency bounds its resource subscriptions in flight too (both eras)", () => {
  test(`2025: ${AT_ONCE} sessions subscribing at once reach an upstream allowed 2 at most 2 at a time, and all are answered`, async () => {
    const sends = await Promise.all(Array.from({ length: AT_ONCE }, () => session(keys.mallory!)));
    const before = (await stats()).methods["resources/subscribe"] ?? 0;
    const started = Date.now();
    const answers = await Promise.all(sends.map((send) => send("resources/subscribe", { uri: URI })));
    const { maxRunning, methods } = await stats();
    const ok = answers.filter((a) => a.result !== undefined).length;
    const figures = `${AT_ONCE} resources/subscribe of a 600 ms upstream: ${ok} answered in ${Date.now() - started} ms, ${(methods["resources/subscribe"] ?? 0) - before} upstream, at most ${maxRunning} there at once (maxConcurrency 2)`;
    // Measured before the fix: 12 answered in ~650 ms, 12 upstream at once.
    expect(maxRunning, figures).toBeLessThanOrEqual(2);
    expect(ok, figures).toBe(AT_ONCE);
  }, 60_000);

  test(`2026-07-28: ${AT_ONCE} listen streams naming the URI reach the upstream at most 2 at a time, and each acknowledges it`, async () => {
    const acks = await Promise.all(Array.from({ length: AT_ONCE }, () => listen(keys.eve!, [URI])));
    const { maxRunning } = await stats();
    const acknowledged = acks.filter((a) => a.message.params?.notifications?.resourceSubscriptions?.includes(URI)).length;
    const figures = `${AT_ONCE} listen streams of one URI on a 600 ms upstream: ${acknowledged} acknowledged it, at most ${maxRunning} subscriptions there at once (maxConcurrency 2)`;
    // Measured before the fix: 12 at the upstream at once.
    expect(maxRunning, figures).toBeLessThanOrEqual(2);
    expect(acknowledged, figures).toBe(AT_ONCE);
  }, 60_000);

  test("one consumer's queue of slow subscriptions does not hold another consumer's call behind it", async () => {
    const sends = await Promise.all(Array.from({ length: 2 * AT_ONCE }, () => session(keys.mallory!)));
    const queued = Promise.all(sends.map((send) => send("resources/subscribe", { uri: URI })));
    await new Promise((r) => setTimeout(r, 300));
    const victim = await session(keys.eve!);
    const started = Date.now();
    const answer = await victim("tools/call", { name: toolName, arguments: {} });
    const waited = Date.now() - started;
    await queued;
    const figures = `eve's call took ${waited} ms behind ${2 * AT_ONCE} of mallory's 600 ms subscriptions (2 at a time)`;
    // Slots are shared fairly between callers: the call takes the next one freed, not the end of the queue (~7 s).
    expect(answer.result?.content, figures).toBeDefined();
    expect(waited, figures).toBeLessThan(1_500);
  }, 60_000);
});

// race (helper-158): two callers subscribing one URI at once each asked the upstream; the second
// did not join the first, still under way. Now one asks and the other joins it; a subscription asked
// once that one is answered goes upstream again, as before (how a caller restores what an upstream
// restart lost).
test("2025: two consumers subscribing one URI at once reach the upstream once, and both are answered", async () => {
  const sends = await Promise.all([session(keys.mallory!), session(keys.eve!)]);
  const subscribes = async () => (await stats()).methods["resources/subscribe"] ?? 0;
  const before = await subscribes();
  const answers = await Promise.all(sends.map((send) => send("resources/subscribe", { uri: URI })));
  const reached = (await subscribes()) - before;
  const figures = `2 subscriptions of one URI at once (a 600 ms upstream): ${answers.filter((a) => a.result !== undefined).length} answered, ${reached} reached the upstream`;
  // Measured before the fix: 2 of 2 reached it (4 of 4 with 4 consumers and slots enough).
  expect(answers.map((a) => a.result), figures).toEqual([{}, {}]);
  expect(reached, figures).toBe(1);
  const later = await session(keys.mallory!);
  expect((await later("resources/subscribe", { uri: URI })).result).toEqual({});
  expect((await subscribes()) - before).toBe(2);
}, 60_000);

// race (helper-165): a joined subscription waited under the time limit of the caller that asked
// first. Another gateway replica's caller (its CALL_TIMEOUT_MS its own, as the bus header says)
// asking first with 300 ms failed this gateway's caller (60 s) at 300 ms; asking second with 200 ms,
// it waited the upstream's whole 600 ms. Each joined caller now waits under its own limit.
describe("a joined subscription waits under its own caller's time limit", () => {
  const UPSTREAM_URI = "att://r/one";
  /** A subscription as another gateway replica asks it, under `limitMs`: the answer (or error code) and when it came. */
  const askedElsewhere = async (limitMs: number) => {
    const nc = await connectAs(nats, "gateway", `gateway-${limitMs}`);
    const started = Date.now();
    try {
      const reply = await busRequest(nc, Subjects.upstreamRequest("tight"), JSON.stringify({ method: "resources/subscribe", params: { uri: UPSTREAM_URI } }), {
        timeoutMs: limitMs,
        busTimeoutMs: 5_000,
        target: "upstream 'tight'",
        headers: { [BusHeader.caller]: `elsewhere-${limitMs}` },
      });
      return { outcome: reply.string(), ms: Date.now() - started };
    } catch (error) {
      return { outcome: (error as { code?: string }).code, ms: Date.now() - started };
    } finally {
      await nc.close();
    }
  };

  test("a caller with a longer limit joining one with a shorter is answered", async () => {
    const send = await session(keys.eve!);
    const first = askedElsewhere(300);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    const answer = await send("resources/subscribe", { uri: URI });
    const ms = Date.now() - started;
    const elsewhere = await first;
    const figures = `a 600 ms upstream; asked first under 300 ms: ${JSON.stringify(elsewhere)}; joined under 60 s: ${JSON.stringify(answer.result ?? answer.error)} in ${ms} ms`;
    console.log(`[measure] ${figures}`);
    expect(elsewhere.outcome, figures).toBe("upstream_timeout");
    expect(answer.result, figures).toEqual({});
  }, 30_000);

  test("a caller with a shorter limit joining one with a longer is answered within its own", async () => {
    const send = await session(keys.eve!);
    const first = send("resources/subscribe", { uri: URI });
    await new Promise((r) => setTimeout(r, 100));
    const joined = await askedElsewhere(200);
    const answer = await first;
    const figures = `a 600 ms upstream; asked first under 60 s: ${JSON.stringify(answer.result ?? answer.error)}; joined under 200 ms: ${JSON.stringify(joined)}`;
    console.log(`[measure] ${figures}`);
    expect(answer.result, figures).toEqual({});
    expect(joined.outcome, figures).toBe("upstream_timeout");
    expect(joined.ms, figures).toBeLessThan(450);
  }, 30_000);
});

describe("a 2025 resources/subscribe waiting for its upstream counts among its caller's calls in flight", () => {
  // attack (helper-150): a subscribe POST is answered only when the upstream answers it, but it was no
  // call in flight: nothing bounded how many one caller held open. At a replica's connection bound a
  // connection whose answer is under way never gives way, so one consumer's subscriptions to an
  // upstream slow to answer them held every connection, and another tenant's were reset.
  const MAX_CONNECTIONS = 32;
  const BOUND = 8;
  let boundedNats: NatsServer;
  let bounded: Stack;
  let slow: ChildProcess;
  let slowKeys: Record<string, string> = {};

  beforeAll(async () => {
    boundedNats = await startNats();
    bounded = await startStack(boundedNats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_CONNECTIONS: String(MAX_CONNECTIONS), GATEWAY_MAX_CALLS_PER_PRINCIPAL: String(BOUND) });
    slow = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SLOW_SUBSCRIBE_MS: "3000", TEMPLATES: "1" } });
    const [first] = await once(slow.stdout!, "data");
    await registerUpstreams(bounded, { name: "slow", transport: { type: "streamable-http", url: String(first).trim() }, options: { maxConcurrency: 64 } });
    const created = await bounded.admin.post("/v1/virtual-servers", { name: "slow", tools: [{ upstream: "slow", tool: "echo" }], resources: [{ upstream: "slow", uriTemplate: "att://t/{id}" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    slowKeys = await grantedConsumers(bounded, "slow", ["mallory", "eve"]);
  }, 60_000);

  afterAll(async () => {
    slow?.kill();
    await bounded?.close();
    await boundedNats?.stop();
  });

  test("a session's log level and other changes do not wait behind its subscription to an upstream slow to answer it", async () => {
    const send = await rawSession(bounded.mcpUrl("slow"), slowKeys.eve!);
    const subscribing = send("resources/subscribe", { uri: "slow+att://t/waited" });
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const level = await send("logging/setLevel", { level: "debug" });
    const unsubscribe = await send("resources/unsubscribe", { uri: "slow+att://t/other" });
    const waited = Date.now() - started;
    expect((await subscribing).result).toEqual({});
    // Waiting behind it, each held its connection (uncounted) for the upstream's 3 s.
    expect({ level: level.result, unsubscribe: unsubscribe.result }).toEqual({ level: {}, unsubscribe: {} });
    expect(waited, `setLevel and unsubscribe answered ${waited} ms after a subscription of a 3 s upstream began`).toBeLessThan(1_500);
  }, 60_000);

  test(`attack: one consumer's subscriptions to an upstream slow to answer them hold at most ${BOUND} connections, and another tenant's new connection is served`, async () => {
    const sends = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) sends.push(await rawSession(bounded.mcpUrl("slow"), slowKeys.mallory!));
    // Each on a connection of its own (a session's requests, sent at once, would share none).
    const pending = sends.map((send, i) => postAlone(bounded.mcpUrl("slow"), send.headers, { jsonrpc: "2.0", id: 50, method: "resources/subscribe", params: { uri: `slow+att://t/${i}` } }, 6_000));
    await new Promise((r) => setTimeout(r, 500));
    const victim = await postAlone(bounded.mcpUrl("slow"), { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${slowKeys.eve}` }, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "v", version: "1" } } }, 2_000);
    const answers = await Promise.all(pending);
    const subscribed = answers.filter((a) => a.status === 200 && a.text.includes('"result"')).length;
    const refused = answers.filter((a) => a.text.includes("too_many_calls")).length;
    const figures = `${MAX_CONNECTIONS} subscriptions of a 3 s upstream at once: ${subscribed} subscribed, ${refused} refused too_many_calls; another tenant's initialize on a new connection: HTTP ${victim.status} ${victim.text.slice(0, 60)}`;
    // Measured before the fix: all 32 held open (then subscribed), the other tenant's connection reset.
    expect(victim.status, figures).toBe(200);
    expect(subscribed, figures).toBe(BOUND);
    expect(refused, figures).toBe(MAX_CONNECTIONS - BOUND);
  }, 60_000);
});
