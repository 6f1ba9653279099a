import { ManifoldError, type UpstreamAuth, type UpstreamOAuth, type UpstreamTokenExchange } from "@manifold/contracts";
import type { CatalogProjection } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import { decodeJwt } from "jose";
import { createHash, randomBytes } from "node:crypto";
import { setTimeout } from "node:timers/promises";
import * as oauth from "oauth4webapi";
import { FairCache } from "../fairCache.js";
import type { McpCall } from "../mcpCall.js";
import type { StoredTokens, TokenVault } from "./tokenVault.js";
import { AUTHORIZATION_SERVER_TIMEOUT_MS, IssuerChanged, type UpstreamAuthorization } from "./upstreamAuthorization.js";

/** How long one replica may hold the right to refresh a user's tokens: past the authorization server's own bound. */
const REFRESH_LEASE_MS = AUTHORIZATION_SERVER_TIMEOUT_MS + 5_000;
/** How often a waiting replica reads the record again while another refreshes it. */
const REFRESH_POLL_MS = 50;

/** What consent means to the agent: a URL for its user to open, in the shape of a URL-mode elicitation. */
export interface ConsentRequest {
  elicitationId: string;
  url: string;
  message: string;
}

/**
 * A consumer has no authorization for an upstream yet (or it lapsed): the answer carries where
 * the user grants it. The edge turns it into the era's form (see `consentResult`).
 */
export const consentRequired = (upstream: string, consent: ConsentRequest) =>
  new ManifoldError("upstream_authorization_required", `upstream '${upstream}' needs your authorization: open ${consent.url} and retry`, {
    upstream,
    elicitations: [{ mode: "url", ...consent }],
  });

/** Where the caller's own upstream token's headers say which address it was obtained for: never serialized with them. */
const OBTAINED_FOR: unique symbol = Symbol("obtained for");

/** The address a caller's own upstream token in `headers` was obtained for (`BusHeader.upstreamResource`), if they carry one. */
export const obtainedFor = (headers: Record<string, string> | undefined): string | undefined => (headers as { [OBTAINED_FOR]?: string } | undefined)?.[OBTAINED_FOR];

/** The upstream's delegated authorization and URL, when it has one. */
export function delegatedAuthOf(projection: CatalogProjection, upstream: string): { url: string; config: UpstreamAuth } | undefined {
  const transport = projection.upstream(upstream)?.transport;
  return transport && transport.type !== "stdio" && transport.auth ? { url: transport.url, config: transport.auth } : undefined;
}

/** The same, for upstreams that take each consumer's own OAuth authorization (the vault's). */
export function oauthOf(projection: CatalogProjection, upstream: string): { url: string; config: UpstreamOAuth } | undefined {
  const found = delegatedAuthOf(projection, upstream);
  return found?.config.type === "oauth" ? { url: found.url, config: found.config } : undefined;
}

/**
 * The upstream credentials of a call, where the upstream's registration asks for the caller's
 * own: `auth: { type: "oauth" }` takes the consumer's token from the vault, refreshed shortly
 * before it expires (once per replica at a time); `auth: { type: "token-exchange" }` exchanges
 * the agent's token (RFC 8693) for one with the upstream's audience. Either goes in an
 * `Authorization` header that replaces anything the agent passed through; other upstreams get the
 * agent's pass-through headers as they were. Without a vault token: a consent request, a
 * single-use authorization flow whose URL the user opens.
 */
export class DelegatedCredentials {
  readonly #refreshing = new Map<string, Promise<string | undefined>>();
  /** Exchanged tokens, per inbound token and upstream, until shortly before expiry; each caller holds at most a sixteenth. */
  readonly #exchanged: FairCache<{ token: string; expiresAt: number }>;

  constructor(
    private readonly projection: CatalogProjection,
    private readonly authorization: UpstreamAuthorization,
    /** The vault and the URL its connect links start with; absent without `GATEWAY_VAULT_KEYS`. */
    private readonly vault: { tokens: TokenVault; publicUrl: string } | undefined,
    private readonly refreshMarginMs: number,
    private readonly logger: Logger,
    /** How many exchanged tokens this replica keeps (`GATEWAY_EXCHANGED_TOKENS_KEPT`). */
    exchangedKept: number,
  ) {
    this.#exchanged = new FairCache(exchangedKept);
  }

  /** An upstream without delegated authorization (most) gets the pass-through headers as they are, not through a promise. */
  headersFor(upstream: string, call: Pick<McpCall, "principal" | "inbound">, passedThrough: Record<string, string> | undefined): Record<string, string> | undefined | Promise<Record<string, string>> {
    const delegated = delegatedAuthOf(this.projection, upstream);
    return delegated ? this.#delegatedHeaders(upstream, call, passedThrough, delegated) : passedThrough;
  }

  async #delegatedHeaders(
    upstream: string,
    call: Pick<McpCall, "principal" | "inbound">,
    passedThrough: Record<string, string> | undefined,
    { url, config }: NonNullable<ReturnType<typeof delegatedAuthOf>>,
  ): Promise<Record<string, string>> {
    const token = config.type === "oauth" ? await this.#vaultToken(upstream, call, { url, config }) : await this.#exchangedToken(upstream, call, { url, config });
    const headers: Record<string, string> & { [OBTAINED_FOR]?: string } = {};
    // For this address only: a connector already on another (re-pointed meanwhile) refuses to send it.
    headers[OBTAINED_FOR] = url;
    // This is the only credential the upstream gets: an agent cannot substitute its own.
    for (const [name, value] of Object.entries(passedThrough ?? {})) if (name.toLowerCase() !== "authorization") headers[name] = value;
    headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  async #vaultToken(upstream: string, call: Pick<McpCall, "principal">, delegated: { url: string; config: UpstreamOAuth }): Promise<string> {
    if (!this.vault) {
      throw new ManifoldError("upstream_unavailable", `upstream '${upstream}' acts as each consumer with its own authorization, and this gateway has no token vault (GATEWAY_VAULT_KEYS)`);
    }
    const consumer = call.principal.consumer;
    if (!consumer) throw new ManifoldError("forbidden", `upstream '${upstream}' acts as each consumer with its own authorization: call it with a consumer's credentials`);
    const token = await this.#accessToken(this.vault.tokens, consumer, upstream, delegated);
    if (token === undefined) throw consentRequired(upstream, await this.#startConsent(this.vault, consumer, upstream));
    return token;
  }

  async #exchangedToken(upstream: string, call: Pick<McpCall, "principal" | "inbound">, delegated: { url: string; config: UpstreamTokenExchange }): Promise<string> {
    const subject = call.inbound?.reveal();
    let issuer: unknown;
    try {
      issuer = subject === undefined ? undefined : decodeJwt(subject).iss;
    } catch {
      issuer = undefined;
    }
    // The gateway has verified the token already; only its own issuer can exchange it.
    if (issuer !== delegated.config.issuer) {
      throw new ManifoldError("forbidden", `upstream '${upstream}' takes your identity provider's token in exchange: call it with a token issued by ${delegated.config.issuer}`);
    }
    // For this server and this exchange only: a token exchanged for the upstream's former address
    // is never handed to its new one (which could replay it at the first as the user).
    const key = createHash("sha256").update(`${upstream}\n${delegated.url}\n${JSON.stringify(delegated.config)}\n${subject!}`).digest("base64url");
    const known = this.#exchanged.get(key);
    if (known && known.expiresAt - Date.now() > this.refreshMarginMs) return known.token;
    const exchanged = await this.authorization.exchange(upstream, delegated.url, delegated.config, subject!);
    // Without `expires_in` the token is used once.
    if (exchanged.expiresAt !== undefined) this.#exchanged.remember(key, call.principal.id, { token: exchanged.accessToken, expiresAt: exchanged.expiresAt });
    return exchanged.accessToken;
  }

  async #accessToken(vault: TokenVault, consumer: string, upstream: string, delegated: { url: string; config: UpstreamOAuth }): Promise<string | undefined> {
    const tokens = await vault.get(consumer, upstream);
    if (!tokens) return undefined;
    // Obtained for another server (the upstream was re-pointed since), or by a consumer of this name
    // deleted since (its clean-up missed them): never sent, and dropped.
    const foreign =
      tokens.resource !== delegated.url
        ? "upstream re-pointed since the account was connected"
        : tokens.consumerCreated === undefined || tokens.consumerCreated !== this.projection.consumer(consumer)?.created
          ? "account connected by an earlier consumer of this name"
          : undefined;
    if (foreign) {
      await vault.remove(consumer, upstream);
      this.logger.info({ upstream, consumer }, `${foreign}: consent needed again`);
      return undefined;
    }
    if (tokens.expiresAt === undefined || tokens.expiresAt - Date.now() > this.refreshMarginMs) return tokens.accessToken;
    const key = `${upstream}\n${consumer}`;
    let pending = this.#refreshing.get(key);
    if (!pending) {
      pending = this.#refresh(vault, consumer, upstream, delegated).finally(() => this.#refreshing.delete(key));
      this.#refreshing.set(key, pending);
    }
    return pending;
  }

  /**
   * A fresh access token, or undefined when only the user can grant one again. One replica at a
   * time refreshes a user's tokens (`claimRefresh`); the others wait for its result, polling the
   * record. The authorization server is found before the lease is taken, so under the lease there
   * is one request, bounded below the lease; every write under it is fenced by the lease's revision.
   */
  async #refresh(vault: TokenVault, consumer: string, upstream: string, delegated: { url: string; config: UpstreamOAuth }): Promise<string | undefined> {
    const stale = (tokens: StoredTokens) => tokens.expiresAt !== undefined && tokens.expiresAt - Date.now() <= this.refreshMarginMs;
    await this.authorization.ready(upstream, delegated.url, delegated.config);
    const givesUpAt = Date.now() + REFRESH_LEASE_MS;
    let claim = await vault.claimRefresh(consumer, upstream, REFRESH_LEASE_MS, stale);
    while (claim?.state === "busy") {
      if (Date.now() > givesUpAt) throw new ManifoldError("upstream_unavailable", `upstream '${upstream}': another gateway replica is still refreshing your token; retry`);
      await setTimeout(REFRESH_POLL_MS);
      claim = await vault.claimRefresh(consumer, upstream, REFRESH_LEASE_MS, stale);
    }
    if (!claim) return undefined;
    const current = claim.tokens;
    if (claim.state === "as-is") {
      if (!stale(current) || current.expiresAt! > Date.now()) return current.accessToken;
      await vault.remove(consumer, upstream);
      return undefined;
    }
    let fresh: Awaited<ReturnType<UpstreamAuthorization["refresh"]>>;
    try {
      fresh = await this.authorization.refresh(upstream, delegated.url, delegated.config, current.refreshToken!, current.issuer);
    } catch (error) {
      // A refused grant (revoked, expired), or tokens of another authorization server than the
      // upstream's now, need the user again; anything else may pass, and the lease is given back so
      // that another replica need not wait it out.
      const refused = error instanceof IssuerChanged || (error as { cause?: unknown }).cause instanceof oauth.ResponseBodyError;
      await vault.settleRefresh(consumer, upstream, claim, refused ? undefined : current).catch(() => false);
      if (!refused) throw error;
      this.logger.info({ upstream, consumer }, "upstream authorization lapsed: consent needed again");
      return undefined;
    }
    // Written without the lease: the record is free again, and fresh for every replica. A lease that
    // ran out meanwhile leaves the record to whoever wrote it since; this call still uses its token.
    if (!(await vault.settleRefresh(consumer, upstream, claim, { ...current, ...fresh }))) {
      this.logger.warn({ upstream, consumer }, "upstream token refreshed after the refresh lease ran out: another replica's record stands");
    } else this.logger.info({ upstream, consumer }, "upstream token refreshed");
    return fresh.accessToken;
  }

  async #startConsent(vault: { tokens: TokenVault; publicUrl: string }, consumer: string, upstream: string): Promise<ConsentRequest> {
    // The consumer as it is now: a link started for it is not completed for one created later under its name.
    const created = this.projection.consumer(consumer)?.created;
    if (created === undefined) throw new ManifoldError("unauthorized", `consumer '${consumer}' no longer exists`);
    const state = await vault.tokens.pendingFlow(consumer, upstream, created, () => ({
      state: randomBytes(32).toString("base64url"),
      flow: { consumer, consumerCreated: created, upstream, verifier: oauth.generateRandomCodeVerifier() },
    }));
    return {
      elicitationId: createHash("sha256").update(state).digest("base64url").slice(0, 22),
      url: `${vault.publicUrl}/oauth/connect/${state}`,
      message: `Connect your account at '${upstream}' so that its tools can act as you.`,
    };
  }
}
