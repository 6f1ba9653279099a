import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { InMemoryOAuthClient, signIn } from "../helpers/oauthClient.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A standard MCP client signs in to Manifold through the MCP authorization flow — protected
 * resource metadata → authorization server (oidc-provider, in this process) → authorization
 * code + PKCE with the resource indicator → a JWT whose audience is the virtual server's URL —
 * and uses it with no API key. Tokens for another resource, from an unregistered issuer, or
 * for a consumer that does not accept the provider are 401.
 */
describe("OAuth sign-in to Manifold (the gateway as a protected resource)", () => {
  let nats: NatsServer;
  let stack: Stack;
  let as: AuthorizationServerFixture;
  let rogue: IdentityFixture;
  let recording: RecordingUpstream;
  const tokens: string[] = [];

  const signInAs = async (account: string, url: string) => {
    const oauth = await signIn(as, account, url);
    expect(oauth.authorizationUrl?.searchParams.get("resource")).toBe(url);
    expect(oauth.authorizationUrl?.searchParams.get("code_challenge_method")).toBe("S256");
    tokens.push(oauth.tokens()!.access_token);
    return oauth;
  };
  const post = (url: string, token?: string) =>
    fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-method": "tools/list",
        "mcp-protocol-version": "2026-07-28",
        ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } } } }),
    });

  beforeAll(async () => {
    nats = await startNats();
    [stack, as, rogue, recording] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_OAUTH_SCOPES: "mcp" }),
      startAuthorizationServer(),
      startIdentityProvider(),
      startRecordingUpstream(),
    ]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    await createVirtualServer(stack, "secure", [{ upstream: "rec", tool: "echo" }]);
    await createVirtualServer(stack, "other", [{ upstream: "rec", tool: "echo" }]);
    const ok = async (p: Promise<{ status: number; body: unknown }>) => expect((await p).status, JSON.stringify((await p).body)).toBeLessThan(300);
    await ok(stack.admin.post("/v1/identity-providers", { name: "signin", issuer: as.issuer, jwksUrl: as.jwksUrl, authorizationServer: true }));
    await ok(stack.admin.post("/v1/consumers", { name: "alice", identityProviders: ["signin"] }));
    await ok(stack.admin.post("/v1/consumers", { name: "bob", identityProviders: [] }));
    for (const vs of ["secure", "other"]) {
      for (const who of ["alice", "bob"]) await ok(stack.admin.post(`/v1/virtual-servers/${vs}/grants`, { grantId: who, subject: { consumer: who } }));
    }
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([as?.close(), rogue?.close(), recording?.close()]);
    await nats?.stop();
  });

  test("a 401 points to the virtual server's protected resource metadata (RFC 9728), which names the authorization server", async () => {
    const res = await post(stack.mcpUrl("secure"));
    expect(res.status).toBe(401);
    const metadataUrl = `${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp/secure`;
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="manifold", resource_metadata="${metadataUrl}", scope="mcp"`);
    const metadata = await (await fetch(metadataUrl)).json();
    expect(metadata).toEqual({
      resource: stack.mcpUrl("secure"),
      authorization_servers: [as.issuer],
      bearer_methods_supported: ["header"],
      scopes_supported: ["mcp"],
      resource_name: "Manifold virtual MCP server",
    });
    // Per environment, and for any name: the document says nothing about what exists.
    const staging = (await (await fetch(`${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp/staging/secure`)).json()) as { resource: string };
    expect(staging.resource).toBe(`${stack.gatewayUrl}/mcp/staging/secure`);
    expect((await fetch(`${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp/no-such-server`)).status).toBe(200);
  });

  test("a 1.32.2 client signs in (authorization code + PKCE, resource indicator) and lists and calls with no API key", async () => {
    const oauth = await signInAs("alice", stack.mcpUrl("secure"));
    const claims = decodeJwt(oauth.tokens()!.access_token);
    expect(claims).toMatchObject({ iss: as.issuer, sub: "alice", aud: stack.mcpUrl("secure") });
    const client = new Client({ name: "desktop", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("secure")), { authProvider: oauth }));
    expect((await client.listTools()).tools.map((t) => t.name)).toHaveLength(1);
    const [tool] = (await client.listTools()).tools;
    expect(await client.callTool({ name: tool!.name, arguments: { message: "signed in" } })).toMatchObject({ content: [{ text: "echo: signed in" }] });
    await client.close();
  });

  test("a 2.4.0 client pinned to 2026-07-28 signs in with its own OAuth support and calls", async () => {
    const oauth = new InMemoryOAuthClient("modern-desktop");
    const url = new URL(stack.mcpUrl("secure"));
    const first = new ModernClient({ name: "modern", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await expect(first.connect(new ModernTransport(url, { authProvider: oauth }))).rejects.toThrow("Unauthorized");
    expect(oauth.authorizationUrl?.searchParams.get("resource")).toBe(url.href);
    const back = await as.authorize(oauth.authorizationUrl!, "alice", oauth.redirectUrl);
    await new ModernTransport(url, { authProvider: oauth }).finishAuth(back.searchParams.get("code")!, back.searchParams.get("iss") ?? undefined);
    tokens.push(oauth.tokens()!.access_token);
    const client = new ModernClient({ name: "modern", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
    await client.connect(new ModernTransport(url, { authProvider: oauth }));
    const { tools } = await client.listTools();
    expect(await client.callTool({ name: tools[0]!.name, arguments: { message: "modern" } })).toMatchObject({ content: [{ text: "echo: modern" }] });
    await client.close();
  });

  test("a token is valid for the virtual server it was issued for only (audience = resource URL)", async () => {
    const oauth = await signInAs("alice", stack.mcpUrl("secure"));
    const token = oauth.tokens()!.access_token;
    expect((await post(stack.mcpUrl("secure"), token)).status).toBe(200);
    const elsewhere = await post(stack.mcpUrl("other"), token);
    expect(elsewhere.status).toBe(401);
    expect(elsewhere.headers.get("www-authenticate")).toContain(`resource_metadata="${stack.gatewayUrl}/.well-known/oauth-protected-resource/mcp/other"`);
    expect(elsewhere.headers.get("www-authenticate")).toContain(`error_description="the token's claim 'aud' is not acceptable"`);
  });

  test("a token from an issuer that is not a registered identity provider: 401", async () => {
    const token = await rogue.sign({ sub: "alice" }, { audience: stack.mcpUrl("secure") });
    const res = await post(stack.mcpUrl("secure"), token);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("no identity provider is registered for the token's issuer");
  });

  test("a consumer that does not accept the authorization server cannot be signed in as: 401", async () => {
    const oauth = await signInAs("bob", stack.mcpUrl("secure"));
    const res = await post(stack.mcpUrl("secure"), oauth.tokens()!.access_token);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain("not a consumer that accepts this identity provider");
  });

  test("the upstream never sees the agent's access token", () => {
    expect(recording.calls.length).toBeGreaterThan(0);
    const seen = JSON.stringify(recording.calls);
    for (const token of tokens) expect(seen).not.toContain(token);
  });
});
