import type { NatsServer } from "@manifold/nats-server";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// An identity provider withdraws a signing key (it leaked, or was rotated out): tokens it signs must
// stop working once the gateway has read the provider's new key set. The gateway remembers each
// verified token until its `exp` (up to GATEWAY_JWT_MAX_LIFETIME_S, 2 h by default), and that verdict
// outlived the key: a token forged with the leaked key and used once before the withdrawal kept
// acting as the consumer after the gateway had fetched the set without that key.

const ISSUER = "https://rotating.example/";
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

let nats: NatsServer;
let stack: Stack;
let upstream: RecordingUpstream;
let jwks: Server;
let published: JWK[] = [];
let fetches = 0;
const keys: Record<string, { privateKey: CryptoKey; jwk: JWK }> = {};

const post = (token: string) =>
  fetch(stack.mcpUrl("tools"), {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify(INIT),
  }).then(async (res) => (await res.arrayBuffer(), res.status));

const sign = (kid: string) =>
  new SignJWT({}).setProtectedHeader({ alg: "ES256", kid }).setIssuer(ISSUER).setAudience("manifold").setSubject("bot").setIssuedAt().setExpirationTime("1h").sign(keys[kid]!.privateKey);

beforeAll(async () => {
  for (const kid of ["leaked", "next"]) {
    const pair = await generateKeyPair("ES256");
    keys[kid] = { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg: "ES256", use: "sig" } };
  }
  published = [keys.leaked!.jwk];
  jwks = createServer((_, res) => {
    fetches++;
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: published }));
  });
  await new Promise<void>((r) => jwks.listen(0, "127.0.0.1", r));
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startRecordingUpstream("tools")]);
  await registerUpstreams(stack, { name: "tools", transport: { type: "streamable-http", url: upstream.url } });
  await createVirtualServer(stack, "tools", [{ upstream: "tools", tool: "echo" }]);
  await grantedConsumers(stack, "tools", ["bot"]);
  const registered = await stack.admin.post("/v1/identity-providers", { name: "rotating", issuer: ISSUER, audience: "manifold", jwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks` });
  expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  expect((await stack.admin.request("PUT", "/v1/consumers/bot", { identityProviders: ["rotating"] })).status).toBe(200);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await new Promise<void>((r) => (jwks ? jwks.close(() => r()) : r()));
});

test("attack: a token signed with a key its provider has withdrawn stops acting as the consumer once the new key set is read", async () => {
  const forged = await sign("leaked");
  expect(await post(forged), "the token while its key is published").toBe(200);

  // The provider withdraws the leaked key and signs with the next one from now on.
  published = [keys.next!.jwk];
  // A key the gateway has not seen is a rotation: the set is fetched again, at most once per 30 s.
  await new Promise((r) => setTimeout(r, 31_000));
  const before = fetches;
  expect(await post(await sign("next")), "a token of the new key").toBe(200);
  expect(fetches - before, "the new key set was fetched").toBe(1);

  const after: number[] = [];
  for (let i = 0; i < 5; i++) after.push(await post(forged));
  console.log(JSON.stringify({ forgedAcceptedAfterWithdrawal: after.filter((s) => s === 200).length, of: 5 }));
  // Before: 5 of 5 admitted (200), from the cache of verified tokens, until the token's exp.
  expect(after, "the withdrawn key's token after the gateway read the new set").toEqual([401, 401, 401, 401, 401]);
  expect(await post(await sign("next")), "the new key's tokens keep working").toBe(200);
}, 90_000);
