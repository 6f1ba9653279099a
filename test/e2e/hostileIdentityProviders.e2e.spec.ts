import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { importJWK, SignJWT } from "jose";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { connectClient, initializeWith } from "../helpers/mcp.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A hostile identity provider or authorization server, and anyone on the network: a token is only
// decoded (not verified) to find its issuer before that provider's keys are fetched, so anyone,
// with no credentials, chooses when. Before: jose's remote key set read a set of any size and any
// number of keys, and fetched again for every token after a failure; oauth4webapi read metadata of
// any size, again at every call. The gateway runs in this process (startStack), so its heap is ours.

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
/** An unsigned token naming `iss`: what anyone on the network can send. */
const junkToken = (iss: string, kid: string) => `${b64({ alg: "RS256", kid })}.${b64({ iss, sub: "x", aud: "manifold", exp: Math.floor(Date.now() / 1000) + 60 })}.${Buffer.from("sig").toString("base64url")}`;

let nats: NatsServer;
let stack: Stack;
let upstream: RecordingUpstream;
let jwks: ChildProcess;
let jwksBase: string;
let victimKey: string;
let signingKey: Awaited<ReturnType<typeof importJWK>>;

const post = (token: string) =>
  fetch(stack.mcpUrl("tools"), {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify(INIT),
  });
const stats = async () => (await fetch(`${jwksBase}/stats`)).json() as Promise<{ fail: number; big: number; many: number; bigBytes: number[] }>;

async function provider(name: string, path: string): Promise<string> {
  const issuer = `https://${name}.example/`;
  const res = await stack.admin.post("/v1/identity-providers", { name, issuer, audience: "manifold", jwksUrl: `${jwksBase}${path}` });
  // 200 when a retry of the test registers it again (an unchanged provider is accepted as it is).
  expect([200, 201], JSON.stringify(res.body)).toContain(res.status);
  // Every gateway learns it from the registry stream.
  await new Promise((r) => setTimeout(r, 500));
  return issuer;
}

/** Times API-key requests of a tenant that has nothing to do with the provider, for `ms`. */
async function victimLatencies(ms: number): Promise<number[]> {
  const out: number[] = [];
  for (const until = Date.now() + ms; Date.now() < until; ) {
    const t = performance.now();
    const res = await post(victimKey);
    await res.arrayBuffer();
    out.push(Math.round(performance.now() - t));
    await new Promise((r) => setTimeout(r, 20));
  }
  return out;
}

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_OAUTH_ALLOW_HTTP: "true" }), startRecordingUpstream("tools")]);
  await registerUpstreams(stack, { name: "tools", transport: { type: "streamable-http", url: upstream.url } });
  await createVirtualServer(stack, "tools", [{ upstream: "tools", tool: "echo" }]);
  victimKey = (await grantedConsumers(stack, "tools", ["victim"])).victim!;
  jwks = spawn(process.execPath, [fileURLToPath(new URL("../fixtures/hostileIdentityProvider.mjs", import.meta.url))], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  while (out.split("\n").length < 3) out += String(((await once(jwks.stdout!, "data")) as [Buffer])[0]);
  const [port, privateJwk] = out.split("\n");
  jwksBase = `http://127.0.0.1:${port!.trim()}`;
  signingKey = await importJWK(JSON.parse(privateJwk!), "RS256");
});

afterAll(async () => {
  jwks?.kill();
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("attack: a JWKS endpoint that fails is asked at most once per cooldown, however many junk tokens name its issuer", async () => {
  const issuer = await provider("down", "/fail");
  const before = (await stats()).fail;
  const started = Date.now();
  // From 100 client addresses: one address's failures past a tenth of the budget are refused unverified, without a look at the keys.
  for (let i = 0; i < 100; i++) expect((await initializeWith(stack.mcpUrl("tools"), junkToken(issuer, `r${i}`), `127.0.1.${i + 1}`)).status).toBe(401);
  const fetches = (await stats()).fail - before;
  console.log(JSON.stringify({ junkRequests: 100, jwksFetches: fetches, ms: Date.now() - started }));
  // jose cools down 30 s only after a *successful* fetch: each unauthenticated request is one request to the provider.
  expect(fetches, "JWKS fetches caused by 100 unauthenticated requests").toBeLessThanOrEqual(2);
}, 60_000);

test("attack: a JWKS of 200 MB is not read into every gateway's heap (nor does it stall other tenants)", async () => {
  const issuer = await provider("huge", "/big/200");
  globalThis.gc?.();
  const base = process.memoryUsage();
  let peakHeap = 0;
  let peakExternal = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakHeap = Math.max(peakHeap, m.heapUsed - base.heapUsed);
    peakExternal = Math.max(peakExternal, m.arrayBuffers + m.external - base.arrayBuffers - base.external);
  }, 25);
  const victim = victimLatencies(8_000);
  const t = performance.now();
  const attack = await post(junkToken(issuer, "nope"));
  const attackMs = Math.round(performance.now() - t);
  const latencies = await victim;
  clearInterval(sampler);
  const written = (await stats()).bigBytes;
  const mib = (n: number) => Math.round(n / 2 ** 20);
  console.log(
    JSON.stringify({
      attackStatus: attack.status,
      attackMs,
      jwksBytesWritten: written.map(mib),
      peakHeapMiB: mib(peakHeap),
      peakBuffersMiB: mib(peakExternal),
      victimMaxMs: Math.max(...latencies),
      victimMedianMs: latencies.sort((a, b) => a - b)[Math.floor(latencies.length / 2)],
      victimRequests: latencies.length,
    }),
  );
  expect(attack.status).toBe(401);
  // Secure: the read stops at a bound (a JWKS is a few KB; 1 MiB is generous), so the provider cannot fill the heap.
  // (What the provider got written includes what the sockets held when the gateway stopped reading: a few MB on loopback.)
  expect(Math.max(...written), "bytes of the JWKS the provider got written").toBeLessThan(16 * 2 ** 20);
  expect(peakHeap, "gateway heap held for one provider's JWKS").toBeLessThan(64 * 2 ** 20);
  expect(Math.max(...latencies), "another tenant's API-key request, meanwhile").toBeLessThan(500);
}, 60_000);

test("attack: a JWKS of 300,000 keys does not make every junk token a linear scan that slows other tenants", async () => {
  const issuer = await provider("crowded", "/many/300000");
  // A first token loads the set (cached 10 min, cooldown 30 s).
  const warm = performance.now();
  expect((await post(junkToken(issuer, "warm"))).status).toBe(401);
  const warmMs = Math.round(performance.now() - warm);
  const quiet = await victimLatencies(1_500);
  // Unauthenticated junk tokens with random kids, 8 at a time, while the victim works.
  let junk = 0;
  let stop = false;
  const attackers = Array.from({ length: 8 }, async () => {
    while (!stop) {
      await (await post(junkToken(issuer, `r${Math.random()}`))).arrayBuffer();
      junk++;
    }
  });
  const loaded = await victimLatencies(4_000);
  stop = true;
  await Promise.all(attackers);
  const median = (l: number[]) => [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;
  console.log(JSON.stringify({ keys: 300_000, warmMs, fetches: (await stats()).many, junkRequests: junk, quietMedianMs: median(quiet), underAttackMedianMs: median(loaded), underAttackMaxMs: Math.max(...loaded) }));
  // Secure: a key set is bounded (count and bytes) when it is read, so a junk token costs a map lookup.
  expect(median(loaded), "another tenant's median API-key request under unauthenticated junk tokens").toBeLessThan(Math.max(50, median(quiet) * 3));
}, 90_000);

test("attack: an identity provider's RFC 8414 metadata of 200 MB, read for a token exchange, is not read whole (nor again at every call)", async () => {
  // The provider is registered for sign-in (its JWKS is ordinary); an upstream trusts it for token exchange.
  const issuer = `${jwksBase}/`;
  expect((await stack.admin.post("/v1/identity-providers", { name: "xidp", issuer, audience: "manifold", jwksUrl: `${jwksBase}/jwks-real` })).status).toBe(201);
  expect((await stack.admin.post("/v1/consumers", { name: "partner", identityProviders: ["xidp"] })).status).toBe(201);
  const upstreamReg = await stack.admin.post("/v1/upstreams", { name: "xch", transport: { type: "streamable-http", url: upstream.url, auth: { type: "token-exchange", issuer, clientId: "manifold" } } });
  expect(upstreamReg.status, JSON.stringify(upstreamReg.body)).toBe(201);
  const names = await createVirtualServer(stack, "xtools", [{ upstream: "xch", tool: "echo" }]);
  expect((await stack.admin.post("/v1/virtual-servers/xtools/grants", { grantId: "partner", subject: { consumer: "partner" } })).status).toBe(201);
  const token = await new SignJWT({ sub: "partner" }).setProtectedHeader({ alg: "RS256", kid: "real" }).setIssuer(issuer).setAudience("manifold").setIssuedAt().setExpirationTime("5m").sign(signingKey);
  const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl("xtools")), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  await using agent = await connectClient(transport, "partner");

  globalThis.gc?.();
  const base = process.memoryUsage().heapUsed;
  let peakHeap = 0;
  const sampler = setInterval(() => void (peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed - base)), 25);
  const victim = victimLatencies(12_000);
  const outcomes: string[] = [];
  for (let i = 0; i < 2; i++) {
    const t = performance.now();
    const outcome = await agent.callTool({ name: names["xch/echo"]!, arguments: { message: "hi" } }, undefined, { timeout: 30_000 }).then(
      () => "ok",
      (e: Error) => e.message.slice(0, 120),
    );
    outcomes.push(`${outcome} after ${Math.round(performance.now() - t)} ms`);
  }
  const latencies = await victim;
  clearInterval(sampler);
  const s = (await stats()) as unknown as { metadata: number; metadataBytes: number[] };
  const mib = (n: number) => Math.round(n / 2 ** 20);
  console.log(JSON.stringify({ outcomes, metadataFetches: s.metadata, metadataMiBWritten: s.metadataBytes.map(mib), peakHeapMiB: mib(peakHeap), victimMaxMs: Math.max(...latencies), victimRequests: latencies.length }));
  expect(s.metadata, "the metadata was asked for").toBeGreaterThan(0);
  // Secure: an authorization server's answers are read up to a bound (metadata and token answers are a few KB).
  expect(Math.max(...s.metadataBytes), "bytes of the metadata the provider got written").toBeLessThan(16 * 2 ** 20);
  expect(Math.max(...latencies), "another tenant's API-key request, meanwhile").toBeLessThan(500);
}, 90_000);

// jose checks that `sub` is present, not that it is a string: `String()` made every object subject
// `[object Object]` and `["alice"]` the same caller as `"alice"`, so users a provider told apart
// shared one caller's sessions, task handles and budget (found by an attacker run, helper-119).
test("a token whose subject is not a non-empty string is refused, not turned into text", async () => {
  const issuer = `${jwksBase}/subjects/`;
  expect((await stack.admin.post("/v1/identity-providers", { name: "subjects", issuer, audience: "manifold", jwksUrl: `${jwksBase}/jwks-real`, groups: ["team"] })).status).toBe(201);
  expect((await stack.admin.post("/v1/virtual-servers/tools/grants", { grantId: "team", subject: { group: "team" } })).status).toBe(201);
  await new Promise((r) => setTimeout(r, 300));
  const tokenFor = (sub: unknown) =>
    new SignJWT({ sub: sub as string, groups: ["team"] }).setProtectedHeader({ alg: "RS256", kid: "real" }).setIssuer(issuer).setAudience("manifold").setIssuedAt().setExpirationTime("5m").sign(signingKey);
  expect((await post(await tokenFor("alice"))).status).toBe(200);
  for (const sub of [{ a: 1 }, ["alice"], 42, ""]) {
    const res = await post(await tokenFor(sub));
    const code = res.status === 401 ? ((await res.json()) as { error?: { data?: { code?: string } } }).error?.data?.code : await res.text();
    expect([res.status, code], JSON.stringify(sub)).toEqual([401, "unauthorized"]);
  }
});
