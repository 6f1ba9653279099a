import { API_KEY_PATTERN, type StoredKey } from "@manifold/contracts";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

const digestOf = (salt: string, secret: string) => createHash("sha256").update(salt).update(secret).digest("base64url");

/** A new key: the full key is shown to the admin once; only `stored` enters the registry. */
export function generateApiKey(): { key: string; stored: StoredKey } {
  const keyId = Array.from(randomBytes(12), (b) => BASE32[b & 31]).join("");
  const secret = randomBytes(32).toString("base64url");
  const salt = randomBytes(16).toString("base64url");
  return { key: `mk_${keyId}_${secret}`, stored: { keyId, salt, digest: digestOf(salt, secret) } };
}

/** Splits a presented key into id and secret; undefined when it is not shaped like a Manifold key. */
export function parseApiKey(token: string): { keyId: string; secret: string } | undefined {
  const match = API_KEY_PATTERN.exec(token);
  return match ? { keyId: match[1]!, secret: match[2]! } : undefined;
}

/** Constant-time comparison of the presented secret's digest with the stored one. */
export function keyMatches(stored: StoredKey, secret: string): boolean {
  return timingSafeEqual(Buffer.from(digestOf(stored.salt, secret)), Buffer.from(stored.digest));
}
