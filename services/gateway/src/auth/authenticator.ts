import { consumerPrincipal, keyMatches, subjectPrincipalId, parseApiKey, type CatalogProjection, type IdentityProviderState, type Principal } from "@manifold/domain";
import { decodeJwt, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { anonymousCaller } from "./anonymousCallers.js";
import { verifyAmongKeys } from "./candidateKeys.js";
import { ProviderKeys } from "./providerKeys.js";
import { FairCache } from "../fairCache.js";
import { FailedCredentials, tooManyFailedCredentials } from "./failedCredentials.js";
import { ALGORITHMS, canonicalSignature, checkLifetime, CLOCK_SKEW_S, describeJoseError, incurable, missingCredentials, unauthorized } from "./tokenRules.js";

/** Verified credentials remembered, so the hot path pays for verification once per token. */
const CACHE_LIMIT = 10_000;

/**
 * A verdict remembered per token. `resource`: the endpoint it holds for when it depended on one (an
 * authorization server's token names its audience), else any. Keyed by (resource, token) instead,
 * one valid token of another provider sent to 10,000 paths (`/mcp/x1`…, built from the raw URL
 * before the virtual server is looked up) was verified 10,000 times and cleared every tenant's.
 */
interface Verdict {
  principal: Principal;
  expiresAt: number;
  resource?: string;
  /** A JWT's: its provider's keys and their `generation` when it was verified (a key withdrawn since may have been the one). */
  keys?: { set: ProviderKeys; generation: number };
}

export interface AuthenticatorOptions {
  /** The longest a JWT may be valid (`GATEWAY_JWT_MAX_LIFETIME_S`). */
  maxTokenLifetimeS: number;
  /** `GATEWAY_ALLOW_ANONYMOUS`: a request without an Authorization header is its client network's anonymous principal instead of 401. */
  allowAnonymous?: boolean;
  /** `GATEWAY_OAUTH_ALLOW_HTTP`: key sets may be fetched over plain HTTP (development only). */
  allowHttp?: boolean;
  /** `GATEWAY_MAX_FAILED_CREDENTIALS_PER_S`: failed credentials this replica checks a second, all callers together. */
  failedPerSecond?: number;
}

/**
 * Turns an `Authorization: Bearer …` header into a principal: a Manifold API key
 * (`mk_…`, checked against the salted digest in the registry) or a JWT from a registered
 * identity provider (asymmetric signature by the provider's JWKS, issuer, audience, a required
 * `exp` and `sub`, `nbf`/`iat` with a small skew, a bounded lifetime). A token acts as a
 * consumer only if that consumer names the token's identity provider. Any change to consumers
 * or identity providers clears what was remembered, so a revoked key stops working with the
 * next request; a JWT is verified again once its provider's key set, read again, lacks a key it
 * held (a remembered verdict outlived the withdrawal of a leaked key: accepted until its `exp`).
 * Every failure is `unauthorized` with a message that repeats nothing of the token.
 */
export class Authenticator {
  readonly #projection: CatalogProjection;
  readonly #options: AuthenticatorOptions;
  readonly #verified = new FairCache<Verdict>(CACHE_LIMIT);
  readonly #jwks = new Map<string, ProviderKeys>();
  #keyOwners: Map<string, string> | undefined;
  /** Counts identity provider changes: a verification that saw one begin and end under another is done again. */
  #providerChanges = 0;
  /** Shared by every request whose credentials fail (the gatekeeper counts them). */
  readonly failures: FailedCredentials | undefined;

  constructor(projection: CatalogProjection, options: AuthenticatorOptions) {
    this.#projection = projection;
    this.#options = options;
    this.failures = options.failedPerSecond === undefined ? undefined : new FailedCredentials(options.failedPerSecond);
    projection.onApplied((event) => {
      if (event.type.startsWith("consumer.") || event.type.startsWith("identity-provider.")) {
        this.#verified.clear();
        this.#keyOwners = undefined;
        // Only that provider's keys: another's churn does not make every provider's set be fetched again.
        if (event.type.startsWith("identity-provider.")) {
          this.#jwks.delete((event.data as { name: string }).name);
          this.#providerChanges++;
        }
      }
    });
  }

  /**
   * `resource`: the URL of the endpoint called, the audience an authorization server's tokens must
   * name (RFC 8707); built only for a JWT. A principal already verified (nearly every request) is
   * returned as it is, not through a promise. `address`: the client's, whose failures have a share
   * of the failed-credentials budget of their own, and which names a caller without credentials.
   */
  authenticate(authorization: string | undefined, resource: () => string | undefined, address?: string): Principal | Promise<Principal> {
    // Only the absence of the header is anonymous: anything presented (even empty) is checked as credentials.
    if (authorization === undefined && this.#options.allowAnonymous) return anonymousCaller(address);
    if (!authorization) throw missingCredentials();
    if (!authorization.startsWith("Bearer ")) throw incurable(unauthorized("the Authorization header must use the Bearer scheme"));
    const token = authorization.slice(7).trim();
    const isKey = token.startsWith("mk_");
    const cached = this.#verified.get(token);
    // An authorization server's token holds only at the endpoint its audience names.
    if (cached && cached.expiresAt > Date.now() && (cached.resource === undefined || cached.resource === resource()) && (cached.keys === undefined || cached.keys.set.holds(cached.keys.generation))) {
      return cached.principal;
    }

    if (isKey) return this.#remember(token, this.#apiKey(token));
    // While failures are past their budget, a signature not verified yet is not verified (an API key's check costs a look-up);
    // one being checked counts against it until it is decided, so a burst is no larger than the budget.
    const at = resource();
    const failures = this.failures;
    if (!failures) return this.#jwt(token, at).then((verified) => this.#remember(token, verified));
    return failures.verifying(address).then(async (decided) => {
      if (!decided) throw tooManyFailedCredentials(failures.perSecond);
      try {
        return this.#remember(token, await this.#jwt(token, at));
      } finally {
        decided();
      }
    });
  }

  #remember(token: string, verified: Verdict): Principal {
    this.#verified.remember(token, verified.principal.id, verified);
    return verified.principal;
  }

  #apiKey(token: string): Verdict {
    const parsed = parseApiKey(token);
    if (!parsed) throw incurable(unauthorized("malformed API key"));
    const owner = this.#owners().get(parsed.keyId);
    const consumer = owner ? this.#projection.consumer(owner) : undefined;
    const stored = consumer?.keys.get(parsed.keyId);
    if (!consumer || !stored || !keyMatches(stored, parsed.secret)) throw unauthorized("unknown or revoked API key");
    return { principal: consumerPrincipal(consumer), expiresAt: Number.POSITIVE_INFINITY };
  }

  /**
   * A provider removed (or registered again) while its token was verified, its key set fetched
   * slowly at the provider's own pace, would otherwise be remembered as it was: its groups' access
   * held until the token's `exp`. Such a verification starts over, under the registry as it is now.
   */
  async #jwt(token: string, resource: string | undefined): Promise<Verdict> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const changes = this.#providerChanges;
      const verdict = await this.#verify(token, resource);
      if (changes === this.#providerChanges) return verdict;
    }
    throw unauthorized("the identity providers changed while the token was verified; try again");
  }

  async #verify(token: string, resource: string | undefined): Promise<Verdict> {
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw incurable(unauthorized("the bearer token is neither a Manifold API key nor a JWT"));
    }
    const provider = typeof issuer === "string" ? [...this.#projection.identityProviders()].find((p) => p.issuer === issuer) : undefined;
    // The issuer is the caller's own unverified text: it is not repeated.
    if (!provider) throw unauthorized("no identity provider is registered for the token's issuer");
    if (!canonicalSignature(token)) throw incurable(unauthorized("the token's signature is not in canonical base64url"));
    if (provider.authorizationServer && resource === undefined) {
      throw unauthorized("this gateway serves any host and has no GATEWAY_PUBLIC_URL, so it cannot check that the token was issued for it");
    }
    const keys = this.#keySet(provider);
    // The mark of the set the signature was checked against, read as the key (or the keys a token without `kid` may be of) is handed over.
    let generation = keys.generation;
    const getKey: JWTVerifyGetKey = async (header, jws) => {
      try {
        return await keys.getKey(header, jws);
      } finally {
        generation = keys.generation;
      }
    };
    let payload: JWTPayload;
    try {
      ({ payload } = await verifyAmongKeys(token, getKey, {
        issuer: provider.issuer,
        audience: provider.authorizationServer ? resource : provider.audience,
        algorithms: ALGORITHMS,
        requiredClaims: ["exp", "sub"],
        clockTolerance: CLOCK_SKEW_S,
      }));
    } catch (error) {
      throw describeJoseError(error);
    }
    // jose checks that `sub` is there, not what it is: as text, every object subject was one caller.
    if (typeof payload.sub !== "string" || payload.sub === "") throw unauthorized("the token's 'sub' claim must be a non-empty string");
    const now = Date.now();
    checkLifetime(payload, Math.floor(now / 1000), this.#options.maxTokenLifetimeS);
    // A token acts as a consumer only if that consumer opted in to this identity provider.
    const claimed = payload[provider.consumerClaim];
    const named = typeof claimed === "string" ? this.#projection.consumer(claimed) : undefined;
    const consumer = named?.identityProviders.includes(provider.name) ? named : undefined;
    // A client signed in through the MCP authorization flow is a consumer or nobody: an
    // authorization server's token never stands for a bare subject.
    if (!consumer && provider.authorizationServer) throw unauthorized("the token's subject is not a consumer that accepts this identity provider");
    // Only the groups this provider was registered to assert: any other is ignored.
    const rawGroups = payload[provider.groupsClaim];
    const claimedGroups: unknown[] = Array.isArray(rawGroups) ? rawGroups : [rawGroups];
    const groups = claimedGroups.filter((g): g is string => typeof g === "string" && provider.groups.includes(g));
    const principal = consumer ? consumerPrincipal(consumer, groups) : { groups, id: subjectPrincipalId(provider.issuer, payload.sub) };
    const expiresAt = Math.min(payload.exp! * 1000, now + this.#options.maxTokenLifetimeS * 1000);
    const verdict: Verdict = { principal, expiresAt, keys: { set: keys, generation } };
    return provider.authorizationServer ? { ...verdict, resource } : verdict;
  }

  #keySet(provider: IdentityProviderState): ProviderKeys {
    let keys = this.#jwks.get(provider.name);
    if (!keys) this.#jwks.set(provider.name, (keys = new ProviderKeys(provider.jwksUrl, undefined, this.#options.allowHttp)));
    return keys;
  }

  #owners(): Map<string, string> {
    if (!this.#keyOwners) {
      this.#keyOwners = new Map();
      for (const consumer of this.#projection.consumers()) for (const keyId of consumer.keys.keys()) this.#keyOwners.set(keyId, consumer.name);
    }
    return this.#keyOwners;
  }
}
