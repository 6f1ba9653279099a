import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError, type OAuthClientProvider } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js";
import type { AuthorizationServerFixture } from "../fixtures/authorizationServer.js";

/**
 * What an MCP desktop client keeps for one sign-in, in memory: its registration (dynamic client
 * registration at the authorization server), PKCE verifier, tokens, and the authorization URL it
 * would have opened in a browser. The SDK clients (1.32.2 and 2.4.0) drive the flow with it.
 */
export class InMemoryOAuthClient implements OAuthClientProvider {
  readonly redirectUrl = "http://127.0.0.1:9/oauth/callback";
  authorizationUrl: URL | undefined;
  #client: OAuthClientInformationMixed | undefined;
  #tokens: OAuthTokens | undefined;
  #verifier = "";

  constructor(private readonly name = "manifold-test-client") {}

  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: this.name,
      redirect_uris: [this.redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  clientInformation() {
    return this.#client;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.#client = info;
  }
  tokens() {
    return this.#tokens;
  }
  saveTokens(tokens: OAuthTokens) {
    this.#tokens = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.#verifier = verifier;
  }
  codeVerifier() {
    return this.#verifier;
  }
}

/**
 * A 1.32.2 client's whole sign-in to a Manifold endpoint, the user at the browser played by the
 * authorization server fixture: 401 → protected resource metadata → registration → authorization
 * (code + PKCE, resource indicator) → token. Returns the client's OAuth state, tokens included.
 */
export async function signIn(as: AuthorizationServerFixture, account: string, url: string): Promise<InMemoryOAuthClient> {
  const oauth = new InMemoryOAuthClient();
  const first = new Client({ name: "desktop", version: "1" });
  const refused = await first.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: oauth })).then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(refused instanceof UnauthorizedError) || !oauth.authorizationUrl) throw new Error(`expected the sign-in to start, got ${String(refused)}`);
  const back = await as.authorize(oauth.authorizationUrl, account, oauth.redirectUrl);
  const code = back.searchParams.get("code");
  if (!code) throw new Error(`authorization refused: ${back.search}`);
  await new StreamableHTTPClientTransport(new URL(url), { authProvider: oauth }).finishAuth(code);
  return oauth;
}
