import type { NatsServer } from "@manifold/nats-server";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// The gateway remembers each verified JWT until its `exp` (up to GATEWAY_JWT_MAX_LIFETIME_S, 2 h by
// default). That verdict must not outlive what it rested on:
// - the signing key: a provider withdraws a key (it leaked, or was rotated out), and a token forged
//   with it and used once before kept acting as the consumer after the gateway had read the set
//   without that key;
// - the provider itself: a provider sets the pace of its own key set (up to the gateway's 5 s), so
//   it can keep a verification of one of its tokens in flight at any moment; one in flight when the
//   admin removed the provider finished as if it were still registered, and was remembered with
//   its groups' access.

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let nats: NatsServer;
let stack: Stack;
let upstream: RecordingUpstream;
let jwks: Server;
let jwksBase: string;
/** What each provider's key set holds (by path), how slowly it answers, and how often it was read. */
const published: Record<string, JWK[]> = {};
const delayMs: Record<string, number> = {};
const fetches: Record<string, number> = {};
const keys: Record<string, { privateKey: CryptoKey; jwk: JWK }> = {};

const post = (token: string) =>
  fetch(stack.mcpUrl("tools"), {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify(INIT),
  }).then(async (res) => (await res.arrayBuffer(), res.status));

const sign = (issuer: string, kid: string, sub: string, claims: Record<string, unknown> = {}) =>
  new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid }).setIssuer(issuer).setAudience("manifold").setSubject(sub).setIssuedAt().setExpirationTime("1h").sign(keys[kid]!.privateKey);

async function provider(name: string, extra: Record<string, unknown> = {}): Promise<string> {
  const issuer = `https://${name}.example/`;
  const registered = await stack.admin.post("/v1/identity-providers", { name, issuer, audience: "manifold", jwksUrl: `${jwksBase}/${name}`, ...extra });
  expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  return issuer;
}

beforeAll(async () => {
  for (const kid of ["leaked", "next", "partner"]) {
    const pair = await generateKeyPair("ES256");
    keys[kid] = { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: "ES256", use: "sig" } };
  }
  jwks = createServer((req, res) => {
    const name = req.url!.slice(1);
    fetches[name] = (fetches[name] ?? 0) + 1;
    setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: published[name] ?? [] })), delayMs[name] ?? 0);
  });
  await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
  jwksBase = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}`;
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startRecordingUpstream("tools")]);
  await registerUpstreams(stack, { name: "tools", transport: { type: "streamable-http", url: upstream.url } });
  await createVirtualServer(stack, "tools", [{ upstream: "tools", tool: "echo" }]);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
});

test("attack: a token signed with a key its provider has withdrawn stops acting as the consumer once the new key set is read", async () => {
  published.rotating = [keys.leaked!.jwk];
  const issuer = await provider("rotating");
  await grantedConsumers(stack, "tools", ["bot"]);
  expect((await stack.admin.request("PUT", "/v1/consumers/bot", { identityProviders: ["rotating"] })).status).toBe(200);
  const forged = await sign(issuer, "leaked", "bot");
  expect(await post(forged), "the token while its key is published").toBe(200);

  // The provider withdraws the leaked key and signs with the next one from now on.
  published.rotating = [keys.next!.jwk];
  // A key the gateway has not seen is a rotation: the set is fetched again, at most once per 30 s.
  await sleep(31_000);
  const before = fetches.rotating!;
  expect(await post(await sign(issuer, "next", "bot")), "a token of the new key").toBe(200);
  expect(fetches.rotating! - before, "the new key set was fetched").toBe(1);

  const after: number[] = [];
  for (let i = 0; i < 5; i++) after.push(await post(forged));
  console.log(JSON.stringify({ forgedAcceptedAfterWithdrawal: after.filter((s) => s === 200).length, of: 5 }));
  // Before: 5 of 5 admitted (200), from the cache of verified tokens, until the token's exp.
  expect(after, "the withdrawn key's token after the gateway read the new set").toEqual([401, 401, 401, 401, 401]);
  expect(await post(await sign(issuer, "next", "bot")), "the new key's tokens keep working").toBe(200);
}, 90_000);

test("attack: a token whose verification was in flight when its identity provider was removed is not remembered as valid", async () => {
  // A partner's provider, whose tokens reach the virtual server through a group grant; it answers its key set in 2 s.
  published.partner = [keys.partner!.jwk];
  delayMs.partner = 2_000;
  const issuer = await provider("partner", { groups: ["partners"] });
  expect((await stack.admin.post("/v1/virtual-servers/tools/grants", { grantId: "partners", subject: { group: "partners" } })).status).toBeLessThan(300);
  const token = await sign(issuer, "partner", "mallory", { groups: ["partners"] });

  // The first request makes the gateway fetch the provider's keys; the admin removes it meanwhile.
  const inFlight = post(token);
  await sleep(300);
  const removed = await stack.admin.delete("/v1/identity-providers/partner");
  expect(removed.status, JSON.stringify(removed.body)).toBeLessThan(300);
  // The gateway (in this process) applies the removal well before the key set comes.
  await sleep(200);
  const first = await inFlight;

  const after: number[] = [];
  for (let i = 0; i < 5; i++) after.push(await post(token));
  console.log(JSON.stringify({ inFlight: first, afterRemoval: after }));
  // Before: the in-flight request 200 and 5 of 5 later ones 200, from the verdict remembered with the removed provider's groups.
  expect({ inFlight: first, afterRemoval: after }).toEqual({ inFlight: 401, afterRemoval: [401, 401, 401, 401, 401] });
}, 60_000);
