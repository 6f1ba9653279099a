import { ManifoldError, type UpstreamOAuth } from "@manifold/contracts";
import type { CatalogProjection, Principal } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import { createHash, randomBytes } from "node:crypto";
import * as oauth from "oauth4webapi";
import type { TokenVault } from "./tokenVault.js";
import type { UpstreamAuthorization } from "./upstreamAuthorization.js";

/** What consent means to the agent: a URL for its user to open, in the shape of a URL-mode elicitation. */
export interface ConsentRequest {
  elicitationId: string;
  url: string;
  message: string;
}

/**
 * A consumer has no authorization for an upstream yet (or it lapsed): the answer carries where
 * the user grants it. The edge turns it into the era's form (see `consentAnswer`).
 */
export const consentRequired = (upstream: string, consent: ConsentRequest) =>
  new ManifoldError("upstream_authorization_required", `upstream '${upstream}' needs your authorization: open ${consent.url} and retry`, {
    upstream,
    elicitations: [{ mode: "url", ...consent }],
  });

/** The upstream's OAuth configuration and URL, when it takes each consumer's own authorization. */
export function delegatedAuthOf(projection: CatalogProjection, upstream: string): { url: string; config: UpstreamOAuth } | undefined {
  const transport = projection.upstream(upstream)?.transport;
  return transport && transport.type !== "stdio" && transport.auth?.type === "oauth" ? { url: transport.url, config: transport.auth } : undefined;
}

/**
 * The upstream credentials of a call, per consumer: for an upstream whose registration says
 * `auth: { type: "oauth" }`, the consumer's own token from the vault, refreshed shortly before
 * it expires (once per replica at a time), in an `Authorization` header that replaces anything
 * the agent passed through; otherwise the agent's pass-through headers as they were. Without
 * a token, a consent request: a single-use authorization flow whose URL the user opens.
 */
export class DelegatedCredentials {
  readonly #refreshing = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly projection: CatalogProjection,
    private readonly vault: TokenVault,
    private readonly authorization: UpstreamAuthorization,
    private readonly publicUrl: string,
    private readonly refreshMarginMs: number,
    private readonly logger: Logger,
  ) {}

  async headersFor(upstream: string, principal: Principal, passedThrough: Record<string, string> | undefined): Promise<Record<string, string> | undefined> {
    const delegated = delegatedAuthOf(this.projection, upstream);
    if (!delegated) return passedThrough;
    if (!principal.consumer) {
      throw new ManifoldError("forbidden", `upstream '${upstream}' acts as each consumer with its own authorization: call it with a consumer's credentials`);
    }
    const token = await this.#accessToken(principal.consumer, upstream, delegated);
    if (token === undefined) throw consentRequired(upstream, await this.#startConsent(principal.consumer, upstream));
    const headers: Record<string, string> = {};
    // The vault's token is the only credential this upstream gets: an agent cannot substitute its own.
    for (const [name, value] of Object.entries(passedThrough ?? {})) if (name.toLowerCase() !== "authorization") headers[name] = value;
    headers.Authorization = `Bearer ${token}`;
    return headers;
  }

  async #accessToken(consumer: string, upstream: string, delegated: { url: string; config: UpstreamOAuth }): Promise<string | undefined> {
    const tokens = await this.vault.get(consumer, upstream);
    if (!tokens) return undefined;
    if (tokens.expiresAt === undefined || tokens.expiresAt - Date.now() > this.refreshMarginMs) return tokens.accessToken;
    const key = `${upstream}\n${consumer}`;
    let pending = this.#refreshing.get(key);
    if (!pending) {
      pending = this.#refresh(consumer, upstream, delegated, tokens.refreshToken, tokens.expiresAt).finally(() => this.#refreshing.delete(key));
      this.#refreshing.set(key, pending);
    }
    return pending;
  }

  /** A fresh access token, or undefined when only the user can grant one again. */
  async #refresh(consumer: string, upstream: string, delegated: { url: string; config: UpstreamOAuth }, refreshToken: string | undefined, expiresAt: number): Promise<string | undefined> {
    const current = await this.vault.get(consumer, upstream);
    if (!current) return undefined;
    if (!refreshToken) {
      if (expiresAt > Date.now()) return current.accessToken;
      await this.vault.remove(consumer, upstream);
      return undefined;
    }
    try {
      const fresh = await this.authorization.refresh(upstream, delegated.url, delegated.config, refreshToken);
      await this.vault.put(consumer, upstream, { ...current, ...fresh });
      this.logger.info({ upstream, consumer }, "upstream token refreshed");
      return fresh.accessToken;
    } catch (error) {
      // A refused grant (revoked, expired) needs the user again; anything else may pass.
      if ((error as { cause?: unknown }).cause instanceof oauth.ResponseBodyError) {
        await this.vault.remove(consumer, upstream);
        this.logger.info({ upstream, consumer }, "upstream authorization lapsed: consent needed again");
        return undefined;
      }
      throw error;
    }
  }

  async #startConsent(consumer: string, upstream: string): Promise<ConsentRequest> {
    const state = randomBytes(32).toString("base64url");
    await this.vault.startFlow(state, { consumer, upstream, verifier: oauth.generateRandomCodeVerifier() });
    return {
      elicitationId: createHash("sha256").update(state).digest("base64url").slice(0, 22),
      url: `${this.publicUrl}/oauth/connect/${state}`,
      message: `Connect your account at '${upstream}' so that its tools can act as you.`,
    };
  }
}
