import { errors, exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from "jose";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { JWKS_LIMITS, ProviderKeys } from "./providerKeys.js";

/** An identity provider's JWKS endpoint on a real socket: it serves `answer` and counts what it was asked. */
let server: Server;
let url: string;
let answer: { status: number; body: string };
let fetches = 0;
const signers: { kid: string; key: CryptoKey; jwk: JWK }[] = [];
const serve = (...kids: string[]) => (answer = { status: 200, body: JSON.stringify({ keys: signers.filter((s) => kids.includes(s.kid)).map((s) => s.jwk) }) });
const token = (kid: string) => new SignJWT({}).setProtectedHeader({ alg: "ES256", kid }).setIssuer("idp").setExpirationTime("5m").sign(signers.find((s) => s.kid === kid)!.key);
const LIMITS = { ...JWKS_LIMITS, cooldownMs: 100, maxAgeMs: 200, staleMs: 2_000, maxBackoffMs: 400, maxKeys: 3, maxBytes: 4_096 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  for (const kid of ["a", "b"]) {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    signers.push({ kid, key: privateKey as CryptoKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "ES256" } });
  }
  server = createServer((_req, res) => {
    fetches++;
    res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("an identity provider's keys", () => {
  test("a rotated key is fetched once the cooldown has passed, not for every unknown kid before it", async () => {
    serve("a");
    const keys = new ProviderKeys(url, LIMITS);
    fetches = 0;
    await jwtVerify(await token("a"), keys.getKey);
    serve("a", "b");
    // Within the cooldown a token signed with the new key is refused without asking the provider.
    await expect(jwtVerify(await token("b"), keys.getKey)).rejects.toThrow(/no applicable key/i);
    expect(fetches).toBe(1);
    await sleep(LIMITS.cooldownMs + 20);
    await jwtVerify(await token("b"), keys.getKey);
    expect(fetches).toBe(2);
  });

  test("a provider that fails is asked again only after a back-off, and its last keys serve meanwhile", async () => {
    serve("a");
    const keys = new ProviderKeys(url, LIMITS);
    fetches = 0;
    await jwtVerify(await token("a"), keys.getKey);
    answer = { status: 500, body: "down" };
    await sleep(LIMITS.maxAgeMs + 20);
    // Old enough to be fetched again: the fetch fails, and the keys it had still verify.
    for (let i = 0; i < 20; i++) await jwtVerify(await token("a"), keys.getKey);
    // Once, or twice where the machine is slow enough for the first back-off (100 ms) to pass: never per token.
    expect(fetches).toBeLessThanOrEqual(3);
    await sleep(LIMITS.staleMs);
    // Too old to keep using, and the provider still fails: refused, asked at most once per back-off.
    const before = fetches;
    for (let i = 0; i < 10; i++) await expect(jwtVerify(await token("a"), keys.getKey)).rejects.toThrow(/answered 500|not asked again yet/);
    expect(fetches - before).toBeLessThanOrEqual(1);
    serve("a");
    await sleep(LIMITS.maxBackoffMs + 20);
    await jwtVerify(await token("a"), keys.getKey);
  });

  test("a set with more keys or bytes than accepted is refused, named by its size", async () => {
    answer = { status: 200, body: JSON.stringify({ keys: Array.from({ length: 4 }, (_, i) => ({ ...signers[0]!.jwk, kid: `k${i}` })) }) };
    await expect(jwtVerify(await token("a"), new ProviderKeys(url, LIMITS).getKey)).rejects.toThrow(/4 keys, more than the 3 accepted/);
    answer = { status: 200, body: JSON.stringify({ keys: [{ ...signers[0]!.jwk, padding: "x".repeat(5_000) }] }) };
    const tooLarge = (await jwtVerify(await token("a"), new ProviderKeys(url, LIMITS).getKey).catch((e: unknown) => e)) as Error;
    expect(`${tooLarge.message}: ${(tooLarge.cause as Error).message}`).toMatch(/could not be fetched: the key set is more than the 4096 bytes accepted/);
    answer = { status: 200, body: "not json" };
    await expect(jwtVerify(await token("a"), new ProviderKeys(url, LIMITS).getKey)).rejects.toThrow(/could not be fetched/);
  });

  test("attack: a key set at a plain-HTTP URL off this host is not fetched (anyone on the way could replace it), unless HTTP is allowed", async () => {
    const remote = "http://keys.example.invalid/jwks";
    const refused = (await jwtVerify(await token("a"), new ProviderKeys(remote, LIMITS).getKey).catch((e: unknown) => e)) as Error;
    // Before: fetched like any other, and its keys trusted.
    const text = (e: Error) => `${e.message} ${(e.cause as Error | undefined)?.message ?? ""}`;
    expect(text(refused)).toMatch(/not fetched over plain HTTP/);
    const allowed = (await jwtVerify(await token("a"), new ProviderKeys(remote, LIMITS, true).getKey).catch((e: unknown) => e)) as Error;
    expect(text(allowed)).not.toMatch(/plain HTTP/);
    // On this host it is fetched over HTTP (every test above does).
    expect(new URL(url).protocol).toBe("http:");
  });

  test("a withdrawn key changes the set's generation, an added one does not; an old set is read again while verdicts are only checked", async () => {
    serve("a");
    const keys = new ProviderKeys(url, LIMITS);
    await jwtVerify(await token("a"), keys.getKey);
    const first = keys.generation;
    serve("a", "b");
    await sleep(250);
    fetches = 0;
    // Past maxAge, asking whether a verdict holds fetches the set in the background: no token need miss the cache.
    expect(keys.holds(first)).toBe(true);
    await sleep(50);
    expect({ fetches, holds: keys.holds(first) }).toEqual({ fetches: 1, holds: true });
    serve("b");
    await sleep(250);
    keys.holds(first);
    await sleep(50);
    expect(keys.holds(first), "a verdict reached while 'a' was published").toBe(false);
    await expect(jwtVerify(await token("a"), keys.getKey)).rejects.toThrow(/no applicable key/i);
  });

  /**
   * An RSA public key costs what its modulus and exponent make it: a check under e = 65537 and 2,048
   * bits is a few multiplications, one under a 3,064-bit exponent thousands. Every token's signature
   * is checked on the worker threads every provider's checks share, and anyone picks the key (the
   * `kid` of a token of their own making), so a provider publishing such a key made other
   * providers' callers wait behind its junk tokens.
   */
  test("attack: an RSA key costlier than any provider needs (huge exponent or modulus) is left out of the set, the others kept", async () => {
    const odd = (bits: number) => {
      const b = randomBytes(Math.ceil(bits / 8));
      b[0]! |= 0x80;
      b[b.length - 1]! |= 1;
      return b.toString("base64url");
    };
    const costly = [
      { kty: "RSA", kid: "huge-exponent", alg: "RS256", n: odd(3072), e: odd(3064) },
      { kty: "RSA", kid: "huge-modulus", alg: "RS256", n: odd(16384), e: odd(64) },
    ];
    const ordinary = { kty: "RSA", kid: "ordinary", alg: "RS256", n: odd(4096), e: "AQAB" };
    answer = { status: 200, body: JSON.stringify({ keys: [signers[0]!.jwk, ...costly, ordinary] }) };
    const keys = new ProviderKeys(url, { ...LIMITS, maxKeys: 10, maxBytes: 65_536 });
    await jwtVerify(await token("a"), keys.getKey);
    const forged = (kid: string, bytes: number) =>
      `${Buffer.from(JSON.stringify({ alg: "RS256", kid })).toString("base64url")}.${Buffer.from(JSON.stringify({ sub: "x", exp: 2e9 })).toString("base64url")}.${randomBytes(bytes).toString("base64url")}`;
    // Before: each was imported and checked (33 ms a check for the first, 17 ms for the second, against 0.4 ms), a signature failure.
    for (const kid of ["huge-exponent", "huge-modulus"]) await expect(jwtVerify(forged(kid, 384), keys.getKey), kid).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey);
    // A 4,096-bit key with the usual exponent is an ordinary key: checked, and its forgery refused as such.
    await expect(jwtVerify(forged("ordinary", 512), keys.getKey)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);
  });
});
