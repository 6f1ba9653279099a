import { isRecord } from "@manifold/contracts";
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { readBounded } from "../http/boundedFetch.js";

export interface JwksLimits {
  maxBytes: number;
  maxKeys: number;
  timeoutMs: number;
  cooldownMs: number;
  maxAgeMs: number;
  staleMs: number;
  maxBackoffMs: number;
}

/**
 * What an identity provider's key set may cost. Its tokens' issuer is read before any signature
 * is checked, so anyone can make the gateway look at a registered provider's keys: the set is
 * bounded in bytes and keys (every token is checked against each key with its `kid`), a failed
 * fetch is not repeated per token but after a back-off, and a set that cannot be refreshed is used
 * a while longer.
 */
export const JWKS_LIMITS: Readonly<JwksLimits> = {
  maxBytes: 1024 * 1024,
  maxKeys: 100,
  timeoutMs: 5_000,
  /** Least time between two fetches for a token whose key is not in the set (a rotation). */
  cooldownMs: 30_000,
  /** A set is fetched again when it is this old… */
  maxAgeMs: 10 * 60_000,
  /** …and, while that fails, still used until it is this old. */
  staleMs: 24 * 60 * 60_000,
  /** After a failed fetch the next waits this long, doubling up to `maxBackoffMs`. */
  maxBackoffMs: 5 * 60_000,
};

/**
 * The costliest RSA public key a set may publish and still be used: what a signature check costs
 * grows with the modulus and with the exponent's length. Providers publish 2,048-4,096-bit keys with
 * e = 65537 (17 bits; FIPS 186-5 asks for an odd e between 2^16 and 2^256); a 3,072-bit key with a
 * 3,064-bit exponent cost 22-33 ms a check (0.4 ms at e = 65537), a 16,384-bit one 3-17 ms. A key
 * past either bound is left out of the set: a token naming it is refused as naming no published key,
 * before any signature is checked (`providerKeys.unit.spec.ts`).
 */
export const RSA_KEY_BOUNDS = { modulusBits: 8_192, exponentBits: 32 } as const;

/** The length in bits of a base64url big-endian integer (a JWK's `n` or `e`), leading zeros aside. */
function bitLength(value: string): number {
  const bytes = Buffer.from(value, "base64url");
  let first = 0;
  while (first < bytes.length && bytes[first] === 0) first++;
  return first === bytes.length ? 0 : (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first]!));
}

/** Whether a published key costs what ordinary keys do to check a signature with (`RSA_KEY_BOUNDS`); other kinds have fixed costs. */
const affordable = (key: unknown): boolean =>
  !isRecord(key) ||
  key.kty !== "RSA" ||
  typeof key.n !== "string" ||
  typeof key.e !== "string" ||
  (bitLength(key.n) <= RSA_KEY_BOUNDS.modulusBits && bitLength(key.e) <= RSA_KEY_BOUNDS.exponentBits);

/** Hosts a plain-HTTP key set is fetched from anyway: nothing on the way between. */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** One identity provider's published keys, as `jwtVerify` asks for them. */
export class ProviderKeys {
  readonly #url: string;
  readonly #limits: Readonly<JwksLimits>;
  #local: ReturnType<typeof createLocalJWKSet> | undefined;
  #fetchedAt = -Infinity;
  #failures = 0;
  #retryAt = 0;
  #pending: Promise<void> | undefined;
  /** The keys of the set last read, as published, and how many times a key was withdrawn from it. */
  #published = new Set<string>();
  #withdrawals = 0;

  readonly #allowHttp: boolean;

  /** `allowHttp`: `GATEWAY_OAUTH_ALLOW_HTTP`, development only; a loopback URL is fetched over HTTP regardless. */
  constructor(url: string, limits: Readonly<JwksLimits> = JWKS_LIMITS, allowHttp = false) {
    this.#url = url;
    this.#limits = limits;
    this.#allowHttp = allowHttp;
  }

  /**
   * A mark of the keys a token verified now is checked against: it changes when the provider
   * withdraws a key (a new key added leaves it), so a verdict remembered under an earlier mark may
   * rest on a key that is gone.
   */
  get generation(): number {
    return this.#withdrawals;
  }

  /**
   * Whether a verdict reached under `generation` still stands: no key was withdrawn since. A set
   * older than `maxAgeMs` is fetched again meanwhile (without waiting), so a provider's withdrawal
   * is learned even while every token presented is one already verified.
   */
  holds(generation: number): boolean {
    const now = Date.now();
    if (this.#local && now - this.#fetchedAt > this.#limits.maxAgeMs && now >= this.#retryAt) void this.#refresh(now).catch(() => undefined);
    return generation === this.#withdrawals;
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = Date.now();
    if (!this.#local || now - this.#fetchedAt > this.#limits.maxAgeMs) {
      await this.#refresh(now).catch((error: unknown) => {
        if (!this.#local || now - this.#fetchedAt > this.#limits.staleMs) throw error;
      });
    }
    try {
      return await this.#local!(header, token);
    } catch (error) {
      // A key not in the set may be a rotation: the set is fetched again, at most once per cooldown.
      if (!(error instanceof errors.JWKSNoMatchingKey) || now - this.#fetchedAt < this.#limits.cooldownMs) throw error;
      await this.#refresh(now).catch(() => {
        throw error;
      });
      return this.#local!(header, token);
    }
  };

  #refresh(now: number): Promise<void> {
    if (now < this.#retryAt) return Promise.reject(new errors.JWKSInvalid("the identity provider's keys could not be fetched recently; not asked again yet"));
    this.#pending ??= this.#load().then(
      () => {
        this.#failures = 0;
        this.#retryAt = 0;
      },
      (error: unknown) => {
        this.#retryAt = Date.now() + Math.min(this.#limits.cooldownMs * 2 ** this.#failures, this.#limits.maxBackoffMs);
        this.#failures++;
        // A refusal, a timeout or a body that is not JSON: all say the keys could not be fetched.
        throw error instanceof errors.JOSEError ? error : new errors.JWKSInvalid("the identity provider's keys could not be fetched", { cause: error });
      },
    ).finally(() => (this.#pending = undefined));
    return this.#pending;
  }

  async #load(): Promise<void> {
    // Anyone on the way could replace a key set fetched over plain HTTP, and sign any token of this
    // provider's: only over HTTPS, on this host, or where the operator allowed HTTP for development.
    const { protocol, hostname } = new URL(this.#url);
    if (protocol === "http:" && !this.#allowHttp && !LOOPBACK.has(hostname)) {
      throw new errors.JWKSInvalid("the key set is not fetched over plain HTTP: give the provider an https jwksUrl (GATEWAY_OAUTH_ALLOW_HTTP allows it for development)");
    }
    const response = await fetch(this.#url, {
      redirect: "manual",
      signal: AbortSignal.timeout(this.#limits.timeoutMs),
      headers: { accept: "application/json, application/jwk-set+json" },
    });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw new errors.JWKSInvalid(`the JWKS endpoint answered ${response.status}`);
    }
    const set: unknown = JSON.parse((await readBounded(response, this.#limits.maxBytes, "the key set")).toString("utf8"));
    if (!isRecord(set) || !Array.isArray(set.keys)) throw new errors.JWKSInvalid("the JWKS endpoint answered no key set");
    if (set.keys.length > this.#limits.maxKeys) throw new errors.JWKSInvalid(`the key set holds ${set.keys.length} keys, more than the ${this.#limits.maxKeys} accepted`);
    // Checked on the worker threads every provider's tokens share, with a key any token may name.
    this.#local = createLocalJWKSet({ keys: set.keys.filter(affordable) } as unknown as JSONWebKeySet);
    this.#fetchedAt = Date.now();
    const published = new Set(set.keys.map((key) => JSON.stringify(key)));
    for (const key of this.#published) {
      if (!published.has(key)) {
        this.#withdrawals++;
        break;
      }
    }
    this.#published = published;
  }
}
