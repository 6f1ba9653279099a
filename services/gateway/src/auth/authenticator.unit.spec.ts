import type { CatalogProjection, IdentityProviderState, Principal } from "@manifold/domain";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { Authenticator } from "./authenticator.js";

// One caller, one valid JWT of a provider that is not an authorization server: its verdict does
// not depend on the endpoint called, yet the cache was keyed by (resource, token), and the resource
// is the raw request path, built before the gateway checks that the virtual server exists. Sent to
// 10,000 paths (`/mcp/x0` … `/mcp/x9999`, or percent-encoded spellings of a real name), one token
// filled the cache, which was then cleared whole: every other tenant paid a full verification again.

const ISSUER = "https://idp.example/";
let server: Server;
let privateKey: CryptoKey;
let provider: IdentityProviderState;

beforeAll(async () => {
  const pair = await generateKeyPair("ES256");
  privateKey = pair.privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256" };
  server = createServer((_, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  provider = { name: "idp", issuer: ISSUER, audience: "manifold", jwksUrl, consumerClaim: "client_id", groupsClaim: "groups", groups: [], version: 1 } as unknown as IdentityProviderState;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const token = (sub: string, aud = "manifold") =>
  new SignJWT({ client_id: "bot" }).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer(ISSUER).setAudience(aud).setSubject(sub).setIssuedAt().setExpirationTime("5m").sign(privateKey);

const bot = { name: "bot", created: 1, identityProviders: ["idp"], groups: [], keys: new Map() };
const authenticatorOf = (providers: IdentityProviderState[]) =>
  new Authenticator(
    { onApplied: () => () => undefined, identityProviders: () => providers, consumers: () => [bot], consumer: (name: string) => (name === "bot" ? bot : undefined) } as unknown as CatalogProjection,
    { maxTokenLifetimeS: 3600 },
  );

test("one JWT sent to 10,000 endpoint paths does not flush other callers' verified tokens", async () => {
  const auth = authenticatorOf([provider]);
  const victim = `Bearer ${await token("victim")}`;
  const attacker = `Bearer ${await token("attacker")}`;
  const at = (path: string) => () => `https://gateway.example${path}`;
  await auth.authenticate(victim, at("/mcp/tools"));
  expect(auth.authenticate(victim, at("/mcp/tools"))).not.toBeInstanceOf(Promise);

  let verified = 0;
  for (let i = 0; i < 10_000; i++) {
    const answer = auth.authenticate(attacker, at(`/mcp/x${i}`));
    if (answer instanceof Promise) verified++;
    await answer;
  }
  const again: Principal | Promise<Principal> = auth.authenticate(victim, at("/mcp/tools"));
  // Before: 10,000 full verifications of one token (~2.3 s here), and the victim's entry cleared with the rest.
  expect({ verified, victimStillVerified: !(again instanceof Promise) }).toEqual({ verified: 1, victimStillVerified: true });
});

test("an authorization server's token is still checked against the endpoint it is presented at", async () => {
  const auth = authenticatorOf([{ ...provider, authorizationServer: true } as IdentityProviderState]);
  const mine = "https://gateway.example/mcp/tools";
  const bearer = `Bearer ${await token("client", mine)}`;
  expect(await auth.authenticate(bearer, () => mine)).toMatchObject({ consumer: "bot" });
  expect(auth.authenticate(bearer, () => mine)).not.toBeInstanceOf(Promise);
  // Verified and remembered at its own endpoint, the token is checked again (and refused) at another.
  await expect(auth.authenticate(bearer, () => "https://gateway.example/mcp/other")).rejects.toThrow(/'aud'/);
  // …and that refusal forgets nothing: at its own endpoint it is still verified.
  expect(auth.authenticate(bearer, () => mine)).not.toBeInstanceOf(Promise);
});

test("one signature has one spelling: the unused bits of its last character do not make another cache entry", async () => {
  const auth = authenticatorOf([provider]);
  const jwt = await token("attacker");
  const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  let accepted = 0;
  for (const last of ALPHABET) {
    const spelled = `${jwt.slice(0, -1)}${last}`;
    try {
      await auth.authenticate(`Bearer ${spelled}`, () => undefined);
      accepted++;
    } catch {
      // refused: another signature, or another spelling of this one
    }
  }
  // Before: 16 (an ES256 signature is 86 characters, 4 bits of the last one unused).
  expect(accepted).toBe(1);
});

test("one caller minting 10,000 valid tokens forgets only its own: another caller's stays verified", async () => {
  const auth = authenticatorOf([provider]);
  // Bare subjects (no consumer claim): two principals.
  const bare = (sub: string, jti: string) =>
    new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer(ISSUER).setAudience("manifold").setSubject(sub).setJti(jti).setIssuedAt().setExpirationTime("5m").sign(privateKey);
  const victim = `Bearer ${await bare("victim", "v")}`;
  await auth.authenticate(victim, () => undefined);

  const minted: string[] = [];
  for (let i = 0; i < 10_000; i++) minted.push(`Bearer ${await bare("attacker", `a${i}`)}`);
  for (const attacker of minted) await auth.authenticate(attacker, () => undefined);

  const again = auth.authenticate(victim, () => undefined);
  // Before: the 10,000th token filled the cache, which was cleared whole, the victim's verdict with it.
  expect(again).not.toBeInstanceOf(Promise);
  expect(again).toMatchObject({ id: `sub:${ISSUER}#victim` });
  // The attacker's newest tokens are still remembered; its oldest are not.
  expect(auth.authenticate(minted.at(-1)!, () => undefined)).not.toBeInstanceOf(Promise);
  expect(auth.authenticate(minted[0]!, () => undefined)).toBeInstanceOf(Promise);
}, 60_000);

/**
 * The failed-credentials budget is spent by a failure once its check has run, and a new JWT is
 * verified while the budget holds a unit: every request arriving while others are being checked
 * found the budget as it was before them. So a burst, or as many connections as an address may
 * open (each sent again at once when its 429 came), had every token checked, whatever the budget.
 */
test("attack: forged JWTs sent at once are verified no more than the failed-credentials budget allows; valid ones all are", async () => {
  const forger = (await generateKeyPair("ES256")).privateKey;
  const signed = (sub: string, key: CryptoKey) =>
    new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k1" }).setIssuer(ISSUER).setAudience("manifold").setSubject(sub).setIssuedAt().setExpirationTime("5m").sign(key);
  const forged = await Promise.all(Array.from({ length: 400 }, (_, i) => signed(`f${i}`, forger)));
  const valid = await Promise.all(Array.from({ length: 400 }, (_, i) => signed(`v${i}`, privateKey)));
  /** What became of `tokens` sent at once, each failure counted as the gatekeeper counts it (`refusePastBudget`). */
  const outcomesOf = async (tokens: string[], addressOf: (i: number) => string) => {
    const auth = new Authenticator(
      { onApplied: () => () => undefined, identityProviders: () => [provider], consumers: () => [bot], consumer: () => undefined } as unknown as CatalogProjection,
      { maxTokenLifetimeS: 3600, failedPerSecond: 100 },
    );
    // The key set read once, by a token of another address: not part of the burst.
    await Promise.resolve(auth.authenticate(`Bearer ${valid[0]!}`, () => undefined, "198.18.0.1"));
    const codes = await Promise.all(
      tokens.map((t, i) =>
        Promise.resolve(auth.authenticate(`Bearer ${t}`, () => undefined, addressOf(i))).then(
          () => "admitted",
          (e: { code: string }) => (e.code === "unauthorized" && auth.failures!.take(addressOf(i)), e.code),
        ),
      ),
    );
    const count: Record<string, number> = {};
    for (const code of codes) count[code] = (count[code] ?? 0) + 1;
    return count;
  };
  // A verified forgery is refused `unauthorized`; one not verified, `too_many_failed_credentials` (after: 10 and 110-111, the
  // budget, the allowance of callers without failures, and what they regained meanwhile).
  // Before: 400 of 400 verified from one address (its share is 10 a second), and 400 from 200 addresses (the budget is 100).
  expect((await outcomesOf(forged, () => "203.0.113.9")).unauthorized, "one address").toBeLessThanOrEqual(12);
  expect((await outcomesOf(forged, (i) => `203.0.113.${i % 200}`)).unauthorized, "200 addresses").toBeLessThanOrEqual(120);
  // Valid tokens spend nothing: a burst from one address (agents behind one NAT starting together) is verified in turns.
  expect(await outcomesOf(valid, () => "203.0.113.10"), "valid, one address").toEqual({ admitted: 400 });
});
