import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { rpcError } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { signIn } from "../helpers/oauthClient.js";
import type { Stack } from "../helpers/stack.js";
import { exchangeAuth, startTokenExchangeStack, type TokenExchangeStack } from "../helpers/tokenExchangeStack.js";

/**
 * Token exchange (RFC 8693) for an upstream that trusts the identity provider agents sign in
 * with: the agent's token (audience: the virtual server) is exchanged at that provider
 * (oidc-provider with the grant registered) for one whose audience is the upstream, and only
 * that one is sent upstream. No vault, no consent: the user is who signed in.
 */
describe("token exchange for upstreams that trust the same identity provider", () => {
  let fixture: TokenExchangeStack;
  let stack: Stack;
  let as: AuthorizationServerFixture;
  let upstream: OAuthUpstream;
  let tool: string;
  let aliceKey: string;

  beforeAll(async () => {
    fixture = await startTokenExchangeStack(["alice"]);
    ({ stack, as, upstream, tool } = fixture);
    aliceKey = ((await stack.admin.post("/v1/consumers/alice/keys", {})).body as { key: string }).key;
  });

  afterAll(async () => {
    await fixture?.close();
  });

  test("a signed-in agent's token is exchanged for one with the upstream's audience; the upstream acts for the same user and never sees the agent's token", async () => {
    const oauth = await signIn(as, "alice", stack.mcpUrl("exchange"));
    const inbound = oauth.tokens()!.access_token;
    const client = new Client({ name: "desktop", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("exchange")), { authProvider: oauth }));
    for (let i = 0; i < 3; i++) {
      expect(await client.callTool({ name: tool, arguments: {} })).toMatchObject({ content: [{ text: "acting for alice" }] });
    }
    await client.close();
    // Exchanged once, then reused until shortly before it expires.
    expect(as.exchanges).toEqual([{ client: "manifold", sub: "alice", resource: upstream.url }]);
    const seen = new Set(upstream.calls.map((c) => c.jti));
    expect(seen.size).toBe(1);
    expect(seen.has(decodeJwt(inbound).jti)).toBe(false);
  });

  // The attack: a token exchanged for server A was cached under the upstream's name alone. An
  // admin re-pointing the upstream at server B had B handed A's token on the next calls, to replay
  // at A as the user until it expired.
  test("attack: an upstream re-pointed at another server gets a token exchanged for that server, never the one exchanged for the first", async () => {
    const other = await startOAuthUpstream(as.issuer, as.jwksUrl);
    try {
      const oauth = await signIn(as, "alice", stack.mcpUrl("exchange"));
      const client = new Client({ name: "desktop", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("exchange")), { authProvider: oauth }));
      expect(await client.callTool({ name: tool, arguments: {} })).toMatchObject({ content: [{ text: "acting for alice" }] });
      const forFirst = new Set(upstream.calls.map((c) => c.jti));
      const moved = await stack.admin.request("PUT", "/v1/upstreams/reports", {
        transport: { type: "streamable-http", url: other.url, auth: exchangeAuth(as.issuer) },
      });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      await eventually(async () => ((await client.callTool({ name: tool, arguments: {} })).isError ? undefined : true), 10_000);
      await client.close();
      expect(other.calls.length).toBeGreaterThan(0);
      expect(other.calls.filter((c) => forFirst.has(c.jti))).toEqual([]);
      expect(as.exchanges.at(-1)).toEqual({ client: "manifold", sub: "alice", resource: other.url });
    } finally {
      await other.close();
    }
  });

  test("an agent with an API key has no token to exchange: refused, nothing reaches the upstream", async () => {
    const before = upstream.calls.length;
    const client = new Client({ name: "agent", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("exchange")), { requestInit: { headers: { authorization: `Bearer ${aliceKey}` } } }));
    const refusal = await rpcError(client.callTool({ name: tool, arguments: {} }));
    await client.close();
    expect(refusal.data.code).toBe("forbidden");
    expect(refusal.message).toContain("token issued by");
    expect(upstream.calls.length).toBe(before);
  });
});
