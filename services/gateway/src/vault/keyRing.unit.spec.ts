import { credentialPolicy, processSecrets } from "@manifold/contracts";
import { randomBytes } from "node:crypto";
import { describe, expect, test } from "vitest";
import { KeyRing } from "./keyRing.js";

const k1 = randomBytes(32).toString("base64");
const k2 = randomBytes(32).toString("base64");
const policy = credentialPolicy({ MANIFOLD_SECRET_ENV_PREFIX: "MANIFOLD_SECRET_", MANIFOLD_SECRET_ENV_NAMES: [], MANIFOLD_SECRETS_DIR: undefined });
const secrets = { ...processSecrets({ MANIFOLD_SECRET_K1: k1, MANIFOLD_SECRET_K2: k2, MANIFOLD_SECRET_SHORT: "c2hvcnQ=", HOME: "/root" }), policy };
const ring = (spec: string) => KeyRing.load(spec, secrets);

describe("the vault's key ring (AES-256-GCM)", () => {
  test("seals with the first key and opens with any, bound to the slot", async () => {
    const old = await ring("k1=env:MANIFOLD_SECRET_K1");
    const sealed = old.seal('{"accessToken":"at-123"}', "t.docs.alice");
    expect(sealed.startsWith("k1.")).toBe(true);
    expect(sealed).not.toContain("at-123");
    expect(old.open(sealed, "t.docs.alice")).toBe('{"accessToken":"at-123"}');
    // Moved to another consumer's slot, it does not open.
    expect(old.open(sealed, "t.docs.bob")).toBeUndefined();
    const rotated = await ring("k2=env:MANIFOLD_SECRET_K2,k1=env:MANIFOLD_SECRET_K1");
    expect(rotated.current).toBe("k2");
    expect(rotated.size).toBe(2);
    expect(rotated.open(sealed, "t.docs.alice")).toBe('{"accessToken":"at-123"}');
    expect(KeyRing.keyOf(rotated.seal("x", "s"))).toBe("k2");
    expect((await ring("k2=env:MANIFOLD_SECRET_K2")).open(sealed, "t.docs.alice")).toBeUndefined();
  });

  test("a tampered or malformed value opens to nothing", async () => {
    const keys = await ring("k1=env:MANIFOLD_SECRET_K1");
    const sealed = keys.seal("secret", "slot");
    const [id, iv, body] = sealed.split(".");
    const flipped = Buffer.from(body!, "base64url");
    flipped[0]! ^= 1;
    for (const value of [`${id}.${iv}.${flipped.toString("base64url")}`, "k1.only-two", "", "k9.a.b", `${id}..${body}`]) expect(keys.open(value, "slot")).toBeUndefined();
  });

  test.each([
    ["no key", ""],
    ["a key that is not 32 bytes", "k1=env:MANIFOLD_SECRET_SHORT"],
    ["a reference outside the policy", "k1=env:HOME"],
    ["a repeated id", "k1=env:MANIFOLD_SECRET_K1,k1=env:MANIFOLD_SECRET_K2"],
    ["an id with a dot", "k.1=env:MANIFOLD_SECRET_K1"],
  ])("refuses %s, withholding values", async (_what, spec) => {
    const error = await ring(spec).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).not.toContain(k1);
  });

  // A key given where its reference belongs (`k1=$(openssl rand -base64 32)`) was quoted in the
  // start-up error: whole as a reference outside the policy, or 43 of its 44 characters as the "id"
  // of an entry without one.
  test.each([
    ["the key as the reference", `k1=${k1}`],
    ["the key alone", k1],
    ["the key as an env: name", `k1=env:${k1}`],
    ["the key after a valid entry", `k2=env:MANIFOLD_SECRET_K2,${k1}`],
  ])("attack: %s is refused without quoting any of it", async (_what, spec) => {
    const error = await ring(spec).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(Error);
    const pieces = Array.from({ length: k1.length - 7 }, (_, i) => k1.slice(i, i + 8));
    expect(pieces.filter((piece) => error!.message.includes(piece)), error!.message).toEqual([]);
  });
});
