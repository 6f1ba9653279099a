import { ManifoldError } from "@manifold/contracts";
import { keyMatches, parseApiKey, type CatalogProjection, type IdentityProviderState, type Principal } from "@manifold/domain";
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from "jose";

/** Verified credentials are remembered so the hot path pays for verification once per token. */
const CACHE_LIMIT = 10_000;

const unauthorized = (message: string) => new ManifoldError("unauthorized", message);

/**
 * Turns an `Authorization: Bearer …` header into a principal: a Manifold API key
 * (`mk_…`, checked against the salted digest in the registry) or a JWT from a registered
 * identity provider (signature by the provider's JWKS, issuer, audience, expiry). Any
 * change to consumers or identity providers clears what was remembered, so a revoked key
 * stops working with the next request.
 */
export class Authenticator {
  readonly #projection: CatalogProjection;
  readonly #verified = new Map<string, { principal: Principal; expiresAt: number }>();
  readonly #jwks = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
  #keyOwners: Map<string, string> | undefined;

  constructor(projection: CatalogProjection) {
    this.#projection = projection;
    projection.onApplied((event) => {
      if (event.type.startsWith("consumer.") || event.type.startsWith("identity-provider.")) {
        this.#verified.clear();
        this.#keyOwners = undefined;
        if (event.type.startsWith("identity-provider.")) this.#jwks.clear();
      }
    });
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (!authorization) throw unauthorized("missing bearer token: send Authorization: Bearer <API key or JWT>");
    if (!authorization.startsWith("Bearer ")) throw unauthorized("the Authorization header must use the Bearer scheme");
    const token = authorization.slice(7).trim();
    const cached = this.#verified.get(token);
    if (cached && cached.expiresAt > Date.now()) return cached.principal;

    const verified = token.startsWith("mk_") ? this.#apiKey(token) : await this.#jwt(token);
    if (this.#verified.size >= CACHE_LIMIT) this.#verified.clear();
    this.#verified.set(token, verified);
    return verified.principal;
  }

  #apiKey(token: string): { principal: Principal; expiresAt: number } {
    const parsed = parseApiKey(token);
    if (!parsed) throw unauthorized("malformed API key");
    const owner = this.#owners().get(parsed.keyId);
    const consumer = owner ? this.#projection.consumer(owner) : undefined;
    const stored = consumer?.keys.get(parsed.keyId);
    if (!consumer || !stored || !keyMatches(stored, parsed.secret)) throw unauthorized("unknown or revoked API key");
    return { principal: { consumer: consumer.name, groups: [], id: `consumer:${consumer.name}` }, expiresAt: Number.POSITIVE_INFINITY };
  }

  async #jwt(token: string): Promise<{ principal: Principal; expiresAt: number }> {
    let issuer: string | undefined;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      throw unauthorized("the bearer token is neither a Manifold API key nor a JWT");
    }
    const provider = [...this.#projection.identityProviders()].find((p) => p.issuer === issuer);
    if (!provider) throw unauthorized(`no identity provider is registered for issuer '${issuer ?? "(none)"}'`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#keySet(provider), { issuer: provider.issuer, audience: provider.audience }));
    } catch (error) {
      throw unauthorized(`invalid token from '${provider.name}': ${(error as Error).message}`);
    }
    const claimed = payload[provider.consumerClaim];
    const consumer = typeof claimed === "string" ? this.#projection.consumer(claimed) : undefined;
    const rawGroups = payload[provider.groupsClaim];
    const groups = Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === "string") : typeof rawGroups === "string" ? [rawGroups] : [];
    const id = consumer ? `consumer:${consumer.name}` : `sub:${provider.issuer}#${String(payload.sub)}`;
    const expiresAt = typeof payload.exp === "number" ? payload.exp * 1000 : Date.now() + 60_000;
    return { principal: { ...(consumer ? { consumer: consumer.name } : {}), groups, id }, expiresAt };
  }

  #keySet(provider: IdentityProviderState) {
    let set = this.#jwks.get(provider.name);
    if (!set) this.#jwks.set(provider.name, (set = createRemoteJWKSet(new URL(provider.jwksUrl))));
    return set;
  }

  #owners(): Map<string, string> {
    if (!this.#keyOwners) {
      this.#keyOwners = new Map();
      for (const consumer of this.#projection.consumers()) for (const keyId of consumer.keys.keys()) this.#keyOwners.set(keyId, consumer.name);
    }
    return this.#keyOwners;
  }
}
