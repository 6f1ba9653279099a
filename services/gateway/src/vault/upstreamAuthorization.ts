import { ManifoldError, resolveSecrets, urlCredentialProblem, urlWithoutCredentials, type ScopedSecrets, type UpstreamAuth, type UpstreamOAuth, type UpstreamTokenExchange } from "@manifold/contracts";
import * as oauth from "oauth4webapi";
import { boundedFetch } from "../http/boundedFetch.js";

/** What Manifold knows of one upstream's authorization server and of itself as its client. */
interface ClientOf {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  auth: oauth.ClientAuth;
  resource: string;
  scopes: string[];
}

export interface TokenSet {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: number;
  scope?: string;
}

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

/** The upstream's authorization server is not the one that issued a user's tokens: the user connects again. */
export class IssuerChanged extends Error {
  constructor(upstream: string) {
    super(`upstream '${upstream}': its authorization server is not the one that issued the tokens`);
  }
}

const failed = (upstream: string, what: string, cause?: unknown) =>
  new ManifoldError("upstream_unavailable", `upstream '${upstream}': ${what}`, undefined, cause === undefined ? undefined : { cause });

/** How long an authorization server may take to answer one request (discovery, code, refresh, revocation, exchange). */
export const AUTHORIZATION_SERVER_TIMEOUT_MS = 10_000;
/** The largest metadata document or token response read from an authorization server. */
const AUTHORIZATION_SERVER_MAX_BYTES = 64 * 1024;

/**
 * Manifold as an OAuth 2.1 client of an upstream's authorization server (oauth4webapi): finds
 * the server (configured `issuer`, or the upstream's protected resource metadata, RFC 9728, then
 * RFC 8414 / OIDC discovery), builds authorization requests with PKCE (S256) and the resource
 * indicator, redeems codes checking `state` and `iss` (RFC 9207), refreshes and revokes. Error
 * messages name the step, never a token, code or verifier (oauth4webapi's own messages are kept
 * as the cause, for logs).
 */
export class UpstreamAuthorization {
  readonly #clients = new Map<string, Promise<ClientOf>>();
  /** Every request to an authorization server: bounded (oauth4webapi waits forever by default), plain HTTP only where allowed. */
  readonly #http: { [oauth.allowInsecureRequests]: boolean; [oauth.customFetch]: ReturnType<typeof boundedFetch>; signal: () => AbortSignal };

  constructor(
    private readonly secrets: ScopedSecrets,
    /** Where each upstream's authorization server sends the browser back: one address per upstream (`oauthCallbackUrl`). */
    private readonly redirectUri: (upstream: string) => string,
    options: { allowHttp: boolean },
  ) {
    this.#http = {
      [oauth.allowInsecureRequests]: options.allowHttp,
      // Metadata and token responses are small: one of any size was read whole, again at every call.
      [oauth.customFetch]: boundedFetch(AUTHORIZATION_SERVER_MAX_BYTES, "the authorization server's answer"),
      signal: () => AbortSignal.timeout(AUTHORIZATION_SERVER_TIMEOUT_MS),
    };
  }

  /** The authorization URL to send the user's browser to, and the authorization server it names (its code is redeemed there only). */
  async authorizationUrl(upstream: string, url: string, config: UpstreamOAuth, state: string, verifier: string): Promise<{ url: string; issuer: string }> {
    const { as, client, resource, scopes } = await this.#clientOf(upstream, url, config);
    if (!as.authorization_endpoint) throw failed(upstream, "its authorization server has no authorization endpoint");
    const target = new URL(as.authorization_endpoint);
    target.searchParams.set("response_type", "code");
    target.searchParams.set("client_id", client.client_id);
    target.searchParams.set("redirect_uri", this.redirectUri(upstream));
    target.searchParams.set("state", state);
    target.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(verifier));
    target.searchParams.set("code_challenge_method", "S256");
    target.searchParams.set("resource", resource);
    if (scopes.length > 0) target.searchParams.set("scope", scopes.join(" "));
    return { url: target.href, issuer: as.issuer };
  }

  /**
   * Redeems the callback's code at `issuer`, the server the browser was sent to, and nowhere else:
   * `state` and `iss` are checked before anything is sent. An upstream whose `auth.issuer` changed
   * meanwhile would have been handed the code and its PKCE verifier (an authorization server that
   * sends no `iss`, RFC 9207, leaves nothing else to tell the two apart).
   */
  async redeem(upstream: string, url: string, config: UpstreamOAuth, callback: URL, state: string, verifier: string, issuer: string | undefined): Promise<TokenSet & { issuer: string }> {
    const { as, client, auth, resource } = await this.#clientOf(upstream, url, config);
    if (as.issuer !== issuer) throw failed(upstream, "its authorization server changed after the link was confirmed");
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(as, client, callback, state);
    } catch (error) {
      const denied = error instanceof oauth.AuthorizationResponseError;
      throw failed(upstream, denied ? "the authorization server did not grant access" : "the authorization response is not valid (state or issuer mismatch)", error);
    }
    try {
      const response = await oauth.authorizationCodeGrantRequest(as, client, auth, params, this.redirectUri(upstream), verifier, {
        additionalParameters: { resource },
        ...this.#http,
      });
      return { ...toTokenSet(await oauth.processAuthorizationCodeResponse(as, client, response)), issuer: as.issuer };
    } catch (error) {
      throw failed(upstream, "the authorization code could not be redeemed", error);
    }
  }

  /** Finds the upstream's authorization server (once; cached), so that a refresh then makes one request only. */
  async ready(upstream: string, url: string, config: UpstreamOAuth): Promise<void> {
    await this.#clientOf(upstream, url, config);
  }

  /**
   * Refreshes at the authorization server that issued the tokens (`issuer`), and nowhere else: an
   * upstream whose `auth.issuer` was changed since (or whose metadata names another server now)
   * gets `IssuerChanged`, and the refresh token and client secret are not sent to the new server.
   */
  async refresh(upstream: string, url: string, config: UpstreamOAuth, refreshToken: string, issuer: string): Promise<TokenSet> {
    const { as, client, auth, resource } = await this.#clientOf(upstream, url, config);
    if (as.issuer !== issuer) throw new IssuerChanged(upstream);
    try {
      const response = await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, {
        additionalParameters: { resource },
        ...this.#http,
      });
      const tokens = toTokenSet(await oauth.processRefreshTokenResponse(as, client, response));
      // A server that does not rotate refresh tokens keeps the old one valid.
      return { ...tokens, refreshToken: tokens.refreshToken ?? refreshToken };
    } catch (error) {
      throw failed(upstream, "the token could not be refreshed", error);
    }
  }

  /**
   * Best effort (RFC 7009): the refresh token first, as revoking it usually ends the grant. Only at
   * the server that issued them: another one (the upstream's authorization server changed since)
   * would be handed every connected user's tokens and the client secret by an admin's disconnect.
   */
  async revoke(upstream: string, url: string, config: UpstreamOAuth, tokens: TokenSet & { issuer: string }): Promise<boolean> {
    const { as, client, auth } = await this.#clientOf(upstream, url, config);
    if (as.issuer !== tokens.issuer || !as.revocation_endpoint) return false;
    let revoked = true;
    for (const token of [tokens.refreshToken, tokens.accessToken]) {
      if (!token) continue;
      try {
        await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, token, this.#http));
      } catch {
        revoked = false;
      }
    }
    return revoked;
  }

  /**
   * Token exchange (RFC 8693): the agent's access token for one whose audience is the upstream,
   * from the authorization server that issued it. The subject token goes there and nowhere else.
   */
  async exchange(upstream: string, url: string, config: UpstreamTokenExchange, subjectToken: string): Promise<TokenSet> {
    const { as, client, auth, resource, scopes } = await this.#clientOf(upstream, url, config);
    try {
      const response = await oauth.genericTokenEndpointRequest(
        as,
        client,
        auth,
        TOKEN_EXCHANGE,
        { subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, requested_token_type: ACCESS_TOKEN_TYPE, resource, ...(scopes.length > 0 ? { scope: scopes.join(" ") } : {}) },
        this.#http,
      );
      return toTokenSet(await oauth.processGenericTokenEndpointResponse(as, client, response));
    } catch (error) {
      const refused = error instanceof oauth.ResponseBodyError;
      throw new ManifoldError(
        refused ? "forbidden" : "upstream_unavailable",
        refused ? `upstream '${upstream}': the identity provider refused to exchange your token for one for this upstream` : `upstream '${upstream}': the token exchange failed`,
        undefined,
        { cause: error },
      );
    }
  }

  /** Forgets what was discovered (the upstream was re-registered). */
  forget(upstream: string): void {
    this.#clients.delete(upstream);
  }

  #clientOf(upstream: string, url: string, config: UpstreamAuth): Promise<ClientOf> {
    let pending = this.#clients.get(upstream);
    if (!pending) {
      pending = this.#discover(upstream, url, config);
      this.#clients.set(upstream, pending);
      pending.catch(() => this.#clients.delete(upstream));
    }
    return pending;
  }

  async #discover(upstream: string, url: string, config: UpstreamAuth): Promise<ClientOf> {
    const resource = resourceIndicator(config.resource ?? url);
    const options = this.#http;
    let issuer = config.issuer;
    let scopes = config.scopes;
    if (!issuer) {
      try {
        const metadata = await oauth.processResourceDiscoveryResponse(new URL(resource), await oauth.resourceDiscoveryRequest(new URL(resource), options));
        issuer = metadata.authorization_servers?.[0];
        if (scopes.length === 0) scopes = metadata.scopes_supported ?? [];
      } catch (error) {
        throw failed(upstream, "its protected resource metadata (RFC 9728) could not be read", error);
      }
      if (!issuer) throw failed(upstream, "its protected resource metadata names no authorization server");
    }
    let as: oauth.AuthorizationServer;
    try {
      const issuerUrl = new URL(issuer);
      as = await oauth.processDiscoveryResponse(issuerUrl, await oauth.discoveryRequest(issuerUrl, { algorithm: "oauth2", ...options }));
    } catch (error) {
      throw failed(upstream, "its authorization server's metadata (RFC 8414) could not be read", error);
    }
    const secret = config.clientSecret ? (await resolveSecrets({ clientSecret: config.clientSecret }, this.secrets, "header")).clientSecret! : undefined;
    return {
      as,
      client: { client_id: config.clientId },
      auth: secret ? oauth.ClientSecretPost(secret) : oauth.None(),
      resource,
      scopes,
    };
  }
}

/**
 * The resource indicator (RFC 8707) for a recorded URL (the upstream's, or its `auth.resource`): it
 * goes to the authorization server, in the browser's request and every token request. A URL
 * recorded before the literal-secret checks goes without what they call credentials (user info,
 * credential query values, path parameters), as the admin API shows it, and any URL without its
 * fragment (RFC 8707 forbids one); any other as it is.
 */
export const resourceIndicator = (recorded: string): string => (urlCredentialProblem(recorded) || recorded.includes("#") ? urlWithoutCredentials(recorded) : recorded);

/** The longest an access token is taken to live, whatever its authorization server says. */
const MAX_TOKEN_LIFETIME_S = 365 * 24 * 3600;

/**
 * A token response as the vault keeps it. `expires_in` is the authorization server's: clamped to
 * [0, a year], since a time no `Date` can hold (1e300) made the consumer's connections unlistable.
 */
export function toTokenSet(response: oauth.TokenEndpointResponse): TokenSet {
  const lifetime = typeof response.expires_in === "number" && Number.isFinite(response.expires_in) ? Math.min(Math.max(response.expires_in, 0), MAX_TOKEN_LIFETIME_S) : undefined;
  return {
    accessToken: response.access_token,
    ...(response.refresh_token ? { refreshToken: response.refresh_token } : {}),
    ...(lifetime !== undefined ? { expiresAt: Date.now() + lifetime * 1000 } : {}),
    ...(response.scope ? { scope: response.scope } : {}),
  };
}
