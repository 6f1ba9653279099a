import type { NatsServer } from "@manifold/nats-server";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey, initializeWith, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// Anyone on the network, with no valid credential, against one honest consumer: garbage bearer
// tokens, JWTs naming a registered identity provider but signed by a key it never published, and
// API keys of the right shape that no consumer holds. The attacker runs in a process of its own;
// the gateway runs in this one (startStack), so its event loop and CPU are what is measured here.

const ATTACK_MS = 4_000;
const ATTACKERS = 64;
/** The gateway trusts X-Forwarded-For from this peer only, as from a load balancer in front of it; every other loopback address is a direct caller. */
const PROXY = "127.0.0.1";
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

/** Loops of POSTs with `tokens` in turn from `ATTACKERS` concurrent callers for `ms`, in a child process; prints status counts. */
const ATTACKER = `
const [url, ms, concurrency] = [process.env.URL, Number(process.env.MS), Number(process.env.C)];
const tokens = JSON.parse(process.env.TOKENS);
const body = process.env.BODY;
const extra = JSON.parse(process.env.HEADERS ?? "{}");
const statuses = {};
let n = 0;
const until = Date.now() + ms;
await Promise.all(Array.from({ length: concurrency }, async () => {
  while (Date.now() < until) {
    const token = tokens[n++ % tokens.length];
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: "Bearer " + token, ...extra }, body });
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    } catch { statuses.error = (statuses.error ?? 0) + 1; }
  }
}));
process.stdout.write(JSON.stringify(statuses));
`;

let nats: NatsServer;
let stack: Stack;
let upstream: RecordingUpstream;
let idp: IdentityFixture;
let honest: DisposableClient;
let echo: string;

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream, idp] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_OAUTH_ALLOW_HTTP: "true", GATEWAY_TRUST_PROXY: PROXY }), startRecordingUpstream("tools"), startIdentityProvider()]);
  await registerUpstreams(stack, { name: "tools", transport: { type: "streamable-http", url: upstream.url } });
  echo = (await createVirtualServer(stack, "tools", [{ upstream: "tools", tool: "echo" }]))["tools/echo"]!;
  const key = (await grantedConsumers(stack, "tools", ["honest"])).honest!;
  const res = await stack.admin.post("/v1/identity-providers", { name: "corp", issuer: idp.issuer, audience: "manifold", jwksUrl: idp.jwksUrl });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  honest = await connectWithKey(stack.mcpUrl("tools"), key);
  // The provider's key set is fetched once, by a genuine token, before the attack.
  await honest.callTool({ name: echo, arguments: { message: "warm" } });
  const genuine = await idp.sign({ sub: "someone" });
  await fetch(stack.mcpUrl("tools"), { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${genuine}` }, body: JSON.stringify(INIT) });
});

afterAll(async () => {
  await honest?.close();
  await stack?.close();
  await upstream?.close();
  await idp?.close();
  await nats?.stop();
});

/** The honest consumer's tools/call latencies for `ms`, one call after another, with the gateway's event-loop delay and CPU meanwhile. */
async function honestCalls(ms: number) {
  const latencies: number[] = [];
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; performance.now() - started < ms; i++) {
    const t = performance.now();
    await honest.callTool({ name: echo, arguments: { message: `m${i}` } });
    latencies.push(performance.now() - t);
  }
  const used = process.cpuUsage(cpu);
  delay.disable();
  latencies.sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 10) / 10;
  return {
    calls: latencies.length,
    p50Ms: round(latencies[Math.floor(latencies.length / 2)]!),
    p99Ms: round(latencies[Math.floor(latencies.length * 0.99)]!),
    maxMs: round(latencies.at(-1)!),
    loopDelayP99Ms: round(delay.percentile(99) / 1e6),
    cpuPercent: Math.round(((used.user + used.system) / 1e3 / (performance.now() - started)) * 100),
  };
}

async function attack(tokens: string[], concurrency = ATTACKERS, headers: Record<string, string> = {}): Promise<Record<string, number>> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", ATTACKER], {
    env: { ...process.env, URL: stack.mcpUrl("tools"), MS: String(ATTACK_MS), C: String(concurrency), TOKENS: JSON.stringify(tokens), BODY: JSON.stringify(INIT), HEADERS: JSON.stringify(headers) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += String(chunk)));
  await once(child, "exit");
  return JSON.parse(out) as Record<string, number>;
}

/**
 * One address's failures checked a second (a tenth of GATEWAY_MAX_FAILED_CREDENTIALS_PER_S's
 * default 100, as many at once: docs/operations.md, *Limits at the edge*): every other failure of
 * it is held a second and answered 429.
 */
const ADDRESS_SHARE = 10;

/**
 * The honest consumer's rate and latencies alone and attacked are printed for the record, not
 * compared: they come from two windows 4 s apart on a machine others share, and what else ran
 * moved them either way (attacked, 0.48 to 1.69 times the rate alone in four runs; alternating
 * 600 ms windows with the attack off and on, 0.58 to 1.13). What bounds the attack's cost is
 * counted instead: how many of its failures were checked.
 */
test("attack: a flood of requests with bad credentials is checked at one address's share, and an honest consumer's calls are all served", async () => {
  const garbage = Array.from({ length: 100 }, (_, i) => `garbage-${i}-${"x".repeat(40)}`);
  const forged = await Promise.all(Array.from({ length: 100 }, (_, i) => idp.forge({ sub: `s${i}` }, "manifold")));
  const unknownKeys = Array.from({ length: 100 }, (_, i) => `mk_${String(i).padStart(12, "a").replace(/[0189]/g, "q")}_${"b".repeat(43)}`);
  const alone = await honestCalls(ATTACK_MS);
  const began = performance.now();
  const [attacked, statuses] = await Promise.all([honestCalls(ATTACK_MS - 500), attack([...garbage, ...forged, ...unknownKeys])]);
  const seconds = (performance.now() - began) / 1_000;
  console.log(JSON.stringify({ alone, attacked, attackerStatuses: statuses, seconds }));
  // Every attacking request was refused.
  expect(Object.keys(statuses).filter((s) => s !== "401" && s !== "429")).toEqual([]);
  // Before: the attacker's 64 connections had 4,080 failures checked in 4 s (the honest consumer's
  // calls fell from 247 a second to 75, p50 2.9 → 8.4 ms, p99 17.5 → 90 ms). Each 401 is a failure
  // checked: at most the address's share at once and a share a second.
  expect(statuses["401"] ?? 0, "failures checked").toBeLessThanOrEqual(ADDRESS_SHARE + ADDRESS_SHARE * seconds);
  expect(statuses["429"], "refusals past the failed-credentials budget").toBeGreaterThan(0);
  // The honest consumer's calls were answered throughout (a failed call throws).
  expect(attacked.calls).toBeGreaterThan(0);
}, 60_000);

test("past the failed-credentials budget a request is 429 too_many_failed_credentials with Retry-After; a verified key is served", async () => {
  await new Promise((r) => setTimeout(r, 1_500));
  const forged = await Promise.all(Array.from({ length: 300 }, (_, i) => idp.forge({ sub: `b${i}` }, "manifold")));
  const answers = await Promise.all(
    forged.map(async (token) => {
      const res = await fetch(stack.mcpUrl("tools"), { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` }, body: JSON.stringify(INIT) });
      return { status: res.status, retryAfter: res.headers.get("retry-after"), body: (await res.json()) as { error?: { code: number; data?: { code?: string } } } };
    }),
  );
  const refused = answers.filter((a) => a.status === 429);
  console.log(JSON.stringify({ sent: 300, unauthorized: answers.filter((a) => a.status === 401).length, refused: refused.length }));
  // A second's worth (100 by default) is checked and refused 401, and what the budget regains meanwhile; the rest wait a second and are 429.
  expect(answers.filter((a) => a.status !== 401 && a.status !== 429)).toEqual([]);
  expect(refused.length).toBeGreaterThanOrEqual(1);
  expect(refused[0]!.retryAfter).toBe("1");
  expect(refused[0]!.body.error?.code).toBe(-32034);
  expect((await honest.callTool({ name: echo, arguments: { message: "after" } })).isError).toBeFalsy();
}, 60_000);

test("attack: during a flood of bad credentials from one address, an honest caller's new, valid JWTs from another are verified", async () => {
  await new Promise((r) => setTimeout(r, 1_500));
  expect((await stack.admin.request("PUT", "/v1/consumers/honest", { identityProviders: ["corp"] })).status).toBe(200);
  const forged = await Promise.all(Array.from({ length: 100 }, (_, i) => idp.forge({ sub: `f${i}` }, "manifold")));
  const fresh = await Promise.all(Array.from({ length: 30 }, (_, i) => idp.sign({ sub: "honest", jti: `new-${i}` })));
  const flood = attack(forged, 256);
  await new Promise((r) => setTimeout(r, 500));
  // A new token every 100 ms, each presented once (never verified before), while the flood goes on.
  const honestStatuses: number[] = [];
  await Promise.all(fresh.map(async (token, i) => (await new Promise((r) => setTimeout(r, i * 100)), honestStatuses.push((await initializeWith(stack.mcpUrl("tools"), token, "127.0.0.2")).status))));
  const statuses = await flood;
  const refused = honestStatuses.filter((s) => s === 429).length;
  console.log(JSON.stringify({ honestNewJwts: honestStatuses.length, honestRefused429: refused, attackerStatuses: statuses }));
  expect(Object.keys(statuses).filter((s) => s !== "401" && s !== "429"), "every attacking request refused").toEqual([]);
  expect(statuses["429"], "the flood is still held to its budget").toBeGreaterThan(0);
  // Before: 29 of 30 honest new JWTs 429 too_many_failed_credentials, never verified.
  expect(honestStatuses.filter((s) => s !== 200)).toEqual([]);
}, 60_000);

/** Presents 30 new, valid JWTs of the honest consumer, one every 100 ms, during a flood of forged ones (256 connections) sent with `floodHeaders`; the honest statuses and the flood's. */
async function honestDuringFlood(send: (token: string) => Promise<{ status: number }>, floodHeaders: Record<string, string>) {
  await new Promise((r) => setTimeout(r, 1_500));
  expect((await stack.admin.request("PUT", "/v1/consumers/honest", { identityProviders: ["corp"] })).status).toBe(200);
  const forged = await Promise.all(Array.from({ length: 100 }, (_, i) => idp.forge({ sub: `p${i}` }, "manifold")));
  const fresh = await Promise.all(Array.from({ length: 30 }, (_, i) => idp.sign({ sub: "honest", jti: `proxied-${i}-${Math.random()}` })));
  const flood = attack(forged, 256, floodHeaders);
  await new Promise((r) => setTimeout(r, 500));
  const honestStatuses: number[] = [];
  await Promise.all(fresh.map(async (token, i) => (await new Promise((r) => setTimeout(r, i * 100)), honestStatuses.push((await send(token)).status))));
  return { honestStatuses, statuses: await flood };
}

test("behind a trusted proxy: during one client's flood of bad credentials, another client's new, valid JWTs through the same proxy are verified", async () => {
  // Both come from the proxy's address; X-Forwarded-For names the client each forwards for.
  const { honestStatuses, statuses } = await honestDuringFlood((token) => initializeWith(stack.mcpUrl("tools"), token, PROXY, { "x-forwarded-for": "203.0.113.2" }), { "x-forwarded-for": "203.0.113.1" });
  console.log(JSON.stringify({ behindProxy: true, honestNewJwts: honestStatuses.length, honestRefused429: honestStatuses.filter((s) => s === 429).length, attackerStatuses: statuses }));
  expect(Object.keys(statuses).filter((s) => s !== "401" && s !== "429"), "every attacking request refused").toEqual([]);
  expect(statuses["429"], "the flood is still held to its client's share").toBeGreaterThan(0);
  // Before (no GATEWAY_TRUST_PROXY: both clients were the proxy's one address): 6, 7 and 14 of 30 refused 429 unverified (three runs).
  expect(honestStatuses.filter((s) => s !== 200)).toEqual([]);
}, 60_000);

test("attack: a peer that is not a trusted proxy gets no fresh share by naming a new X-Forwarded-For on each request", async () => {
  await new Promise((r) => setTimeout(r, 1_500));
  const forged = await Promise.all(Array.from({ length: 200 }, (_, i) => idp.forge({ sub: `x${i}` }, "manifold")));
  const answers = await Promise.all(forged.map((token, i) => initializeWith(stack.mcpUrl("tools"), token, "127.0.0.3", { "x-forwarded-for": `198.51.100.${i % 250}, 192.0.2.${i % 250}` })));
  const checked = answers.filter((a) => a.status === 401).length;
  console.log(JSON.stringify({ spoofed: forged.length, checked401: checked, refused429: answers.filter((a) => a.status === 429).length }));
  expect(answers.filter((a) => a.status !== 401 && a.status !== 429)).toEqual([]);
  // One address's share (a tenth of 100 a second) and what it regains meanwhile; 200 were it a new address each time.
  expect(checked).toBeLessThan(30);
}, 60_000);

test("attack: a client holding an IPv6 /64 gets no fresh share by sending each request from a new address of it", async () => {
  await new Promise((r) => setTimeout(r, 1_500));
  const forged = await Promise.all(Array.from({ length: 200 }, (_, i) => idp.forge({ sub: `v${i}` }, "manifold")));
  // As the trusted proxy forwards them: the address each request came from, a new one of 2001:db8:7:7::/64 each time.
  const answers = await Promise.all(forged.map((token, i) => initializeWith(stack.mcpUrl("tools"), token, PROXY, { "x-forwarded-for": `2001:db8:7:7:${i.toString(16)}::${(i + 1).toString(16)}` })));
  const checked = answers.filter((a) => a.status === 401).length;
  console.log(JSON.stringify({ ipv6Addresses: forged.length, checked401: checked, refused429: answers.filter((a) => a.status === 429).length }));
  expect(answers.filter((a) => a.status !== 401 && a.status !== 429)).toEqual([]);
  // Before: 125 of 200 checked (the replica's whole budget, the allowance of callers without failures, and what both regained meanwhile).
  expect(checked).toBeLessThan(30);
}, 60_000);
