import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { setTimeout } from "node:timers/promises";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { Browser } from "../helpers/connectLink.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack, vaultClient } from "../helpers/vaultStack.js";
import { eventually } from "../helpers/mcp.js";
import { signIn } from "../helpers/oauthClient.js";
import { exchangeAuth, startTokenExchangeStack, type TokenExchangeStack } from "../helpers/tokenExchangeStack.js";

/** While set, the identity provider holds each token request this long: an exchange in flight. */
let holdTokenMs = 0;

/**
 * The attack: the gateway picks a caller's upstream token for the upstream's address as it sees it
 * (here an exchange for server A, slow), and an admin re-points the upstream at server B meanwhile.
 * The connector, already on B, sent B the token obtained for A: a credential handed to the wrong
 * party, which B could replay at A as the user. The same holds for a gateway replica whose
 * projection lags the connector's.
 */
describe("a caller's upstream token never reaches an address it was not obtained for", () => {
  let fixture: TokenExchangeStack;

  beforeAll(async () => {
    fixture = await startTokenExchangeStack(["alice"], {}, { delayMs: (method, path) => (method === "POST" && path.startsWith("/token") ? holdTokenMs : 0) });
  });

  afterAll(async () => {
    holdTokenMs = 0;
    await fixture?.close();
  });

  test("attack: re-pointed while the token for the old address is being obtained: the call fails, the new server never sees it, a retry works", async () => {
    const { stack, as, upstream, tool } = fixture;
    const other = await startOAuthUpstream(as.issuer, as.jwksUrl);
    try {
      const oauth = await signIn(as, "alice", stack.mcpUrl("exchange"));
      const client = new Client({ name: "desktop", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("exchange")), { authProvider: oauth }));
      holdTokenMs = 3_000;
      const inFlight = rpcError(client.callTool({ name: tool, arguments: {} }));
      // The gateway has read the upstream's address (A) and waits for the exchange.
      await setTimeout(500);
      const moved = await stack.admin.request("PUT", "/v1/upstreams/reports", {
        transport: { type: "streamable-http", url: other.url, auth: exchangeAuth(as.issuer) },
      });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      // The connector is on B once B hears from it (its discovery).
      await eventually(() => (other.requests.length > 0 ? true : undefined), 5_000);
      holdTokenMs = 0;
      const refusal = await inFlight;
      expect(as.exchanges[0]).toEqual({ client: "manifold", sub: "alice", resource: upstream.url });
      // Nothing obtained for A ever reached B.
      expect(other.requests.filter((r) => r.aud !== undefined && r.aud !== other.url)).toEqual([]);
      // Before: B was sent the token for A (on a session of its own for alice, then the call).
      expect(refusal.data).toMatchObject({ code: "upstream_unavailable", reason: "upstream_moved" });
      expect(refusal.message).toContain("re-pointed");
      expect(other.calls).toEqual([]);
      // The agent retries: the gateway now picks a token for B.
      await eventually(async () => ((await client.callTool({ name: tool, arguments: {} })).isError ? undefined : true), 10_000);
      await client.close();
      expect(other.calls.length).toBeGreaterThan(0);
      expect(as.exchanges.at(-1)).toEqual({ client: "manifold", sub: "alice", resource: other.url });
    } finally {
      holdTokenMs = 0;
      await other.close();
    }
  });
});

const vaultAuth = { type: "oauth", clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT" };

/** While set, the upstream's authorization server holds each token request this long: a refresh in flight. */
let holdRefreshMs = 0;
const CLIENT_SECRET = "manifold-client-secret-5a0c2e";

/**
 * The same for the vault: a user's token for server A, being refreshed (slowly) when the upstream
 * is re-pointed at server B. The refreshed token was obtained for A, and went to B.
 */
describe("a caller's vault token never reaches an address it was not obtained for", () => {
  let nats: NatsServer;
  let stack: Stack;
  let as: AuthorizationServerFixture;
  let upstream: OAuthUpstream;
  let publicUrl: string;
  let tool: string;
  let key: string;

  beforeAll(async () => {
    nats = await startNats();
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    as = await startAuthorizationServer({
      clients: [vaultClient(publicUrl, ["docs"], { secret: CLIENT_SECRET })],
      delayMs: (method, path) => (method === "POST" && path.startsWith("/token") ? holdRefreshMs : 0),
    });
    upstream = await startOAuthUpstream(as.issuer, as.jwksUrl);
    stack = await startVaultStack(nats.url, {
      publicUrl,
      // Tokens live 600 s: a token older than 2 s is refreshed before it is used.
      env: { GATEWAY_PORT: String(port), GATEWAY_VAULT_REFRESH_MARGIN_S: "598" },
      secretsEnv: { MANIFOLD_SECRET_DOCS_CLIENT: CLIENT_SECRET },
    });
    await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: upstream.url, auth: vaultAuth } });
    tool = (await createVirtualServer(stack, "work", [{ upstream: "docs", tool: "whoami" }]))["docs/whoami"]!;
    expect((await stack.admin.post("/v1/consumers", { name: "alice" })).status).toBe(201);
    key = ((await stack.admin.post("/v1/consumers/alice/keys", {})).body as { key: string }).key;
    expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: "alice", subject: { consumer: "alice" } })).status).toBe(201);
  });

  afterAll(async () => {
    holdRefreshMs = 0;
    await stack?.close();
    await Promise.all([as?.close(), upstream?.close()]);
    await nats?.stop();
  });

  test("attack: re-pointed while the user's token for the old address is being refreshed: the call fails, the new server never sees it", async () => {
    const other = await startOAuthUpstream(as.issuer, as.jwksUrl);
    try {
      const client = new Client({ name: "agent", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("work")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
      const asked = await rpcError(client.callTool({ name: tool, arguments: {} }));
      const link = (asked.data.elicitations as { url: string }[])[0]!.url;
      const browser = new Browser();
      const back = await as.authorize(await browser.openAndConfirm(link), "alice@docs", `${publicUrl}/oauth/callback`);
      expect((await browser.fetch(back)).status).toBe(200);
      expect(await client.callTool({ name: tool, arguments: {} })).toMatchObject({ content: [{ text: "acting for alice@docs" }] });
      // Past the refresh margin: the next call refreshes first, at A's authorization server, slowly.
      await setTimeout(2_100);
      holdRefreshMs = 3_000;
      const inFlight = rpcError(client.callTool({ name: tool, arguments: {} }));
      await setTimeout(500);
      const moved = await stack.admin.request("PUT", "/v1/upstreams/docs", { transport: { type: "streamable-http", url: other.url, auth: vaultAuth } });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      await eventually(() => (other.requests.length > 0 ? true : undefined), 5_000);
      holdRefreshMs = 0;
      const refusal = await inFlight;
      await client.close();
      expect(other.requests.filter((r) => r.aud !== undefined && r.aud !== other.url)).toEqual([]);
      expect(other.calls).toEqual([]);
      expect(refusal.data).toMatchObject({ code: "upstream_unavailable", reason: "upstream_moved" });
    } finally {
      holdRefreshMs = 0;
      await other.close();
    }
  });
});
