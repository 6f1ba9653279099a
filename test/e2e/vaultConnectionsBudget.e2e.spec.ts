import type { NatsServer } from "@manifold/nats-server";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack } from "../helpers/vaultStack.js";

const KEY = randomBytes(32).toString("base64");
const SECRETS = { MANIFOLD_SECRET_VAULT_K1: KEY };
const RECORDS = 10_000;

/**
 * `GET /oauth/connections` lists a consumer's records from the vault stream's subjects
 * (`t.*.<consumer>`): nats-server walks every consumer's records for each listing. It spent no
 * budget, so one consumer listing in a loop kept nats-server (and the gateway's bus connection,
 * which every tenant's vault reads and sessions share) busy for everyone.
 */
let nats: NatsServer;
let stack: Stack;
let idp: IdentityFixture;
const keys: Record<string, string> = {};

beforeAll(async () => {
  nats = await startNats();
  stack = await startVaultStack(nats.url, { connector: false, secretsEnv: SECRETS });
  for (const consumer of ["alice", "mallory"]) {
    expect((await stack.admin.post("/v1/consumers", { name: consumer })).status).toBe(201);
    keys[consumer] = ((await stack.admin.post(`/v1/consumers/${consumer}/keys`, {})).body as { key: string }).key;
  }
  // Other tenants' connected accounts.
  const vault = stack.gateway.vault!;
  for (let i = 0; i < RECORDS; i += 250) {
    await Promise.all(Array.from({ length: 250 }, (_, j) => vault.put(`user-${i + j}`, "docs", { accessToken: randomBytes(24).toString("base64url"), issuer: "https://as.example/", connectedAt: Date.now() })));
  }
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await idp?.close();
  await nats?.stop();
});

test("attack: one consumer listing its connections in a loop spends its own budget, not the bus every tenant shares", async () => {
  const list = (consumer: string) => fetch(`${stack.gatewayUrl}/oauth/connections`, { headers: { authorization: `Bearer ${keys[consumer]}` } });
  expect((await list("alice")).status).toBe(200);
  let stop = false;
  let served = 0;
  let refused = 0;
  const loops = Array.from({ length: 16 }, async () => {
    while (!stop) {
      const answer = await list("mallory");
      await answer.arrayBuffer();
      if (answer.status === 200) served++;
      else if (answer.status === 429) refused++;
    }
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  // Another tenant's own vault reads meanwhile.
  const waits: number[] = [];
  for (let i = 0; i < 30; i++) {
    const at = performance.now();
    await stack.gateway.vault!.claimRefresh(`user-${i}`, "docs", 1_000, () => false);
    waits.push(performance.now() - at);
  }
  stop = true;
  await Promise.all(loops);
  waits.sort((a, b) => a - b);
  const median = Math.round(waits[15]!);
  // Before: ~900 listings walked the vault in ~2 s (none refused) and another tenant's reads took a median of ~50 ms.
  expect(served, `${served} listings served, ${refused} refused; another tenant's median read ${median} ms`).toBeLessThan(60);
  expect(refused).toBeGreaterThan(0);
  expect((await list("alice")).status).toBe(200);
}, 60_000);

test("attack: forged JWTs sent to /oauth/connections spend the failed-credentials budget as at the MCP endpoints", async () => {
  idp = await startIdentityProvider();
  expect((await stack.admin.post("/v1/identity-providers", { name: "corp", issuer: idp.issuer, audience: "manifold", jwksUrl: idp.jwksUrl })).status).toBe(201);
  // Each a JWT of a registered provider, signed by a key it never published: a signature to check.
  const forged = await Promise.all(Array.from({ length: 200 }, (_, i) => idp.forge({ sub: `c${i}` }, "manifold")));
  const answers = await Promise.all(
    forged.map(async (token) => {
      const res = await fetch(`${stack.gatewayUrl}/oauth/connections`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, retryAfter: res.headers.get("retry-after"), code: ((await res.json()) as { error?: { data?: { code?: string } } }).error?.data?.code };
    }),
  );
  const checked = answers.filter((a) => a.status === 401).length;
  const refused = answers.filter((a) => a.status === 429);
  console.log(JSON.stringify({ forged: forged.length, checked401: checked, refused429: refused.length }));
  expect(answers.filter((a) => a.status !== 401 && a.status !== 429)).toEqual([]);
  // Before: 200 of 200 checked (401), none counted. One address's share is a tenth of 100 a second, and what it regains meanwhile.
  expect(checked).toBeLessThan(30);
  expect(refused[0]).toMatchObject({ retryAfter: "1", code: "too_many_failed_credentials" });
  // A consumer's own key is still served.
  expect((await fetch(`${stack.gatewayUrl}/oauth/connections`, { headers: { authorization: `Bearer ${keys.alice}` } })).status).toBe(200);
}, 60_000);
