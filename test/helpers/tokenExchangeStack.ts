import type { NatsServer } from "@manifold/nats-server";
import { expect } from "vitest";
import { startAuthorizationServer, TOKEN_EXCHANGE, type AuthorizationServerFixture, type AuthorizationServerOptions } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { createVirtualServer, registerUpstreams } from "./catalog.js";
import { startNats, startStack, type Stack } from "./stack.js";

/** Manifold's client secret at the identity provider, and the `env:` reference its registration names. */
export const EXCHANGE_CLIENT_SECRET = "manifold-exchange-secret-44b2";
export const exchangeAuth = (issuer: string) => ({ type: "token-exchange", issuer, clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_EXCHANGE_CLIENT" });

export interface TokenExchangeStack extends AsyncDisposable {
  readonly nats: NatsServer;
  readonly stack: Stack;
  /** The identity provider agents sign in with, where Manifold exchanges their tokens (`exchanges` lists each). */
  readonly as: AuthorizationServerFixture;
  /** The upstream `reports`, which trusts that provider (`calls` lists the tokens it was sent). */
  readonly upstream: OAuthUpstream;
  /** The exposed name of `reports/whoami` in the virtual server `exchange`. */
  readonly tool: string;
  close(): Promise<void>;
}

/**
 * A stack whose upstream `reports` takes the agents' tokens in exchange (RFC 8693) at the identity
 * provider `signin` they sign in with (oidc-provider with the grant registered), behind the virtual
 * server `exchange`; each of `consumers` signs in there and is granted the virtual server.
 */
export async function startTokenExchangeStack(consumers: string[], gatewayEnv: Record<string, string> = {}, asOptions: Pick<AuthorizationServerOptions, "delayMs"> = {}): Promise<TokenExchangeStack> {
  const nats = await startNats();
  const as = await startAuthorizationServer({
    ...asOptions,
    clients: [{ client_id: "manifold", client_secret: EXCHANGE_CLIENT_SECRET, redirect_uris: [], response_types: [], grant_types: [TOKEN_EXCHANGE], token_endpoint_auth_method: "client_secret_post" }],
  });
  const upstream = await startOAuthUpstream(as.issuer, as.jwksUrl);
  const stack = await startStack(
    nats.url,
    { GATEWAY_AUTH: "required", GATEWAY_OAUTH_SCOPES: "mcp", GATEWAY_OAUTH_ALLOW_HTTP: "true", ...gatewayEnv },
    { secretsEnv: { MANIFOLD_SECRET_EXCHANGE_CLIENT: EXCHANGE_CLIENT_SECRET } },
  );
  const close = async () => {
    await stack.close();
    await Promise.all([as.close(), upstream.close()]);
    await nats.stop();
  };
  try {
    await registerUpstreams(stack, { name: "reports", transport: { type: "streamable-http", url: upstream.url, auth: exchangeAuth(as.issuer) } });
    const tool = (await createVirtualServer(stack, "exchange", [{ upstream: "reports", tool: "whoami" }]))["reports/whoami"]!;
    expect((await stack.admin.post("/v1/identity-providers", { name: "signin", issuer: as.issuer, jwksUrl: as.jwksUrl, authorizationServer: true })).status).toBe(201);
    for (const name of consumers) {
      expect((await stack.admin.post("/v1/consumers", { name, identityProviders: ["signin"] })).status).toBe(201);
      expect((await stack.admin.post("/v1/virtual-servers/exchange/grants", { grantId: name, subject: { consumer: name } })).status).toBe(201);
    }
    return { nats, stack, as, upstream, tool, close, [Symbol.asyncDispose]: close };
  } catch (error) {
    await close();
    throw error;
  }
}
