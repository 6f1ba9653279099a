import type { NatsServer } from "@manifold/nats-server";
import { SignJWT } from "jose";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startKeySets, type KeySets } from "../fixtures/keySets.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { initializeWith } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A JWT need not name its key (`kid` is optional in RFC 7515), and an identity provider rotating
// its keys publishes the old and the new one together for a while: a normal production state. A
// token without `kid` then matches two keys of its type, and the gateway refused it (jose's
// JWKSMultipleMatchingKeys read as "not a valid JWT") for as long as the overlap lasted.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let nats: NatsServer;
let stack: Stack;
let upstream: RecordingUpstream;
let jwks: KeySets;
let keys: KeySets["keys"];

const post = (token: string) => initializeWith(stack.mcpUrl("tools"), token);

/** A token of provider `name` for the consumer `bot`, signed by `key`, naming it in its header only when `kid` says so. */
const sign = (key: string, kid?: string, name = "rotating") =>
  new SignJWT({ client_id: "bot" }).setProtectedHeader({ alg: "ES256", ...(kid && { kid }) }).setIssuer(`https://${name}.example/`).setAudience("manifold").setSubject("bot").setIssuedAt().setExpirationTime("1h").sign(keys[key]!.privateKey);

beforeAll(async () => {
  jwks = await startKeySets(["old", "new", "newer", "k3", "k4", "k5", "rogue"]);
  keys = jwks.keys;
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startRecordingUpstream("tools")]);
  await registerUpstreams(stack, { name: "tools", transport: { type: "streamable-http", url: upstream.url } });
  await createVirtualServer(stack, "tools", [{ upstream: "tools", tool: "echo" }]);
  for (const name of ["rotating", "crowded"]) {
    const res = await stack.admin.post("/v1/identity-providers", { name, issuer: `https://${name}.example/`, audience: "manifold", jwksUrl: `${jwks.base}/${name}` });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
  await grantedConsumers(stack, "tools", ["bot"]);
  expect((await stack.admin.request("PUT", "/v1/consumers/bot", { identityProviders: ["rotating", "crowded"] })).status).toBe(200);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await jwks?.close();
});

test("a token without kid is accepted while its provider publishes an old and a new key; one neither signed is not", async () => {
  jwks.published.rotating = [keys.old!.jwk, keys.new!.jwk];
  const statuses = { byOld: (await post(await sign("old"))).status, byNew: (await post(await sign("new"))).status, forged: (await post(await sign("rogue"))).status };
  console.log(JSON.stringify(statuses));
  // Before: { byOld: 401, byNew: 401, forged: 401 } — "the token is not a valid JWT" for every kid-less token during the overlap.
  expect(statuses).toEqual({ byOld: 200, byNew: 200, forged: 401 });
  expect((await post(await sign("new", "new"))).status, "a token naming its key, as before").toBe(200);
});

test("a token without kid is refused, saying why, when more than 4 keys of its type could have signed it", async () => {
  jwks.published.crowded = ["old", "new", "k3", "k4", "k5"].map((k) => keys[k]!.jwk);
  const refused = await post(await sign("k5", undefined, "crowded"));
  console.log(JSON.stringify({ fiveCandidates: refused }));
  expect(refused.status).toBe(401);
  expect(refused.body).toContain("'kid'");
  expect((await post(await sign("k5", "k5", "crowded"))).status, "the same key named by kid").toBe(200);
});

test("a kid-less token's verdict ends when the key that verified it is withdrawn", async () => {
  const byOld = await sign("old");
  expect((await post(byOld)).status).toBe(200);
  // The provider withdraws the old key and adds another; a token of that one makes the gateway read the set again (at most once per 30 s).
  jwks.published.rotating = [keys.new!.jwk, keys.newer!.jwk];
  await sleep(31_000);
  const before = jwks.fetches.rotating!;
  expect((await post(await sign("newer", "newer"))).status).toBe(200);
  expect(jwks.fetches.rotating! - before, "the set was read again").toBe(1);
  expect((await post(byOld)).status, "the withdrawn key's kid-less token").toBe(401);
  expect((await post(await sign("new"))).status, "a kid-less token of a key still published").toBe(200);
}, 60_000);
