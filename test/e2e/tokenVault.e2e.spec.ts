import type { NatsConnection } from "@manifold/bus";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { decodeJwt } from "jose";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { Browser } from "../helpers/connectLink.js";
import { busEnv, connectAs, startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack, vaultClient } from "../helpers/vaultStack.js";

const CLIENT_SECRET = "manifold-client-secret-7d1e0c";
const KEY_1 = randomBytes(32).toString("base64");
const KEY_2 = randomBytes(32).toString("base64");
const SECRETS = { MANIFOLD_SECRET_VAULT_K1: KEY_1, MANIFOLD_SECRET_VAULT_K2: KEY_2, MANIFOLD_SECRET_DOCS_CLIENT: CLIENT_SECRET };
const text = (result: unknown) => ((result as { content: { text: string }[] }).content[0]!.text);

/**
 * Each consumer's own upstream account: an upstream that requires OAuth (a Streamable HTTP MCP
 * server of ours validating tokens of oidc-provider) is called as the consumer's user at that
 * upstream. First call → consent URL (-32042 for a 2025 client, `input_required` with a URL
 * elicitation for a 2026-07-28 client) → the user grants access at the upstream's
 * authorization server (automated) → the call succeeds as that user. Two users never see each
 * other's upstream identity; tokens are refreshed before expiry, sealed at rest, disconnected
 * by the consumer (revoked at the authorization server), and survive a key rotation.
 */
describe("per-user upstream OAuth (the token vault)", () => {
  let nats: NatsServer;
  let stack: Stack;
  let as: AuthorizationServerFixture;
  let upstream: OAuthUpstream;
  let publicUrl: string;
  let tool: string;
  const keys: Record<string, string> = {};
  const logs: string[] = [];
  let slowServer = false;

  const legacy = async (consumer: string, url = stack.mcpUrl("work")) => {
    const client = new Client({ name: "agent", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return client;
  };
  /** The user at the browser: opens the connect link, confirms it, signs in at the upstream's authorization server as `account`, and lands back on Manifold. */
  const consent = async (link: string, account: string, browser = new Browser()) => {
    const back = await as.authorize(await browser.openAndConfirm(link), account, `${publicUrl}/oauth/callback`);
    const landing = await browser.fetch(back);
    expect(landing.status, await landing.clone().text()).toBe(200);
    expect(await landing.text()).toContain("is connected");
  };
  const consentUrlOf = async (consumer: string) => {
    const client = await legacy(consumer);
    const refusal = await rpcError(client.callTool({ name: tool, arguments: {} }));
    await client.close();
    expect(refusal.code).toBe(-32042);
    const [elicitation] = refusal.data.elicitations as { mode: string; url: string; elicitationId: string; message: string }[];
    expect(elicitation).toMatchObject({ mode: "url", message: expect.stringContaining("docs") });
    expect(elicitation!.url.startsWith(`${publicUrl}/oauth/connect/`)).toBe(true);
    return elicitation!.url;
  };
  const whoami = async (consumer: string) => {
    const client = await legacy(consumer);
    try {
      return text(await client.callTool({ name: tool, arguments: {} }));
    } finally {
      await client.close();
    }
  };

  /** An authorization server of the admin's own: its metadata names itself, and it keeps every request it gets. */
  const adminsOwnServer = async () => {
    const seen: string[] = [];
    const evil = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk: Buffer) => (body += chunk.toString()));
      req.on("end", () => {
        seen.push(`${req.method} ${req.url} ${body}`);
        res.setHeader("content-type", "application/json");
        if (req.url === "/.well-known/oauth-authorization-server") {
          return res.end(JSON.stringify({ issuer: `${base}/`, authorization_endpoint: `${base}/authorize`, token_endpoint: `${base}/token`, revocation_endpoint: `${base}/revoke`, response_types_supported: ["code"], code_challenge_methods_supported: ["S256"] }));
        }
        res.statusCode = 400;
        res.end(JSON.stringify({ error: "invalid_grant" }));
      });
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    return { base, seen, evil };
  };
  /** The `docs` upstream at the same URL, with this authorization server (its metadata's when absent). */
  const reconfigure = (issuer?: string) =>
    stack.admin.request("PUT", "/v1/upstreams/docs", {
      transport: { type: "streamable-http", url: upstream.url, auth: { type: "oauth", clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT", ...(issuer ? { issuer } : {}) } },
    });

  /**
   * The connector ends the upstream session it opened with this access token (a DELETE carrying
   * it, from `since`) within 1 s; no other request carries the token after that. Says how long it took.
   */
  const sessionEndedFor = async (accessToken: string, since: number) => {
    const { jti } = decodeJwt(accessToken);
    const ended = await eventually(() => upstream.requests.find((r) => r.method === "DELETE" && r.jti === jti), 2_000);
    expect(ended.at - since).toBeLessThan(1_000);
    return async () => {
      // Whatever runs next (a call asking for consent again) must not carry the old token.
      expect(upstream.requests.filter((r) => r.jti === jti && r.at >= ended.at && r !== ended)).toEqual([]);
      return ended.at - since;
    };
  };

  beforeAll(async () => {
    nats = await startNats();
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    as = await startAuthorizationServer({
      clients: [
        vaultClient(publicUrl, ["docs", "stuck"], { secret: CLIENT_SECRET }),
        // A client the server issues no refresh tokens to (a common setup).
        vaultClient(publicUrl, ["notes"], { clientId: "manifold-no-refresh", secret: CLIENT_SECRET, refresh: false }),
      ],
      rotateRefreshTokens: true,
      // A slow server when a test asks: discovery 6 s, a token request 9.5 s (each within the 10 s bound).
      delayMs: (method, path) => (!slowServer ? 0 : path.includes("/.well-known/") ? 6_000 : method === "POST" && path.startsWith("/token") ? 9_500 : 0),
    });
    upstream = await startOAuthUpstream(as.issuer, as.jwksUrl);
    stack = await startVaultStack(nats.url, {
      publicUrl,
      // Tokens live 600 s: a token older than 2 s is refreshed before it is used.
      env: { GATEWAY_PORT: String(port), GATEWAY_VAULT_REFRESH_MARGIN_S: "598" },
      secretsEnv: SECRETS,
      logs,
    });
    await registerUpstreams(stack, {
      name: "docs",
      transport: { type: "streamable-http", url: upstream.url, auth: { type: "oauth", clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT" } },
    });
    tool = (await createVirtualServer(stack, "work", [{ upstream: "docs", tool: "whoami" }]))["docs/whoami"]!;
    for (const consumer of ["alice", "bob", "carol", "mallory", "dora", "erin", "frank", "gina", "hank"]) {
      expect((await stack.admin.post("/v1/consumers", { name: consumer })).status).toBe(201);
      keys[consumer] = ((await stack.admin.post(`/v1/consumers/${consumer}/keys`, {})).body as { key: string }).key;
      expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: consumer, subject: { consumer } })).status).toBe(201);
    }
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([as?.close(), upstream?.close()]);
    await nats?.stop();
  });

  test("first call of a 2025 client → consent URL (-32042 URL elicitation); nothing reaches the upstream", async () => {
    const before = upstream.calls.length + upstream.refused;
    await consentUrlOf("alice");
    expect(upstream.calls.length + upstream.refused).toBe(before);
  });

  test("attack: a consumer calling in a loop keeps one pending authorization per upstream, not one per call; a confirmed link is not handed out again", async () => {
    // Each call used to write a new flow to the bus (640 a second from one consumer, each kept 600 s).
    const links = new Set<string>();
    for (let i = 0; i < 10; i++) links.add(await consentUrlOf("frank"));
    expect(links.size).toBe(1);
    // Once confirmed in a browser, that link belongs to that browser: the next call gets a new one.
    await new Browser().openAndConfirm([...links][0]!);
    const next = await consentUrlOf("frank");
    expect(next).not.toBe([...links][0]);
    expect(await consentUrlOf("frank")).toBe(next);
  });

  test("completed consent (authorization code + PKCE, iss checked) → the call succeeds as that user", async () => {
    await consent(await consentUrlOf("alice"), "alice@docs");
    expect(await whoami("alice")).toBe("acting for alice@docs");
    // The link was single-use.
    const again = await fetch(`${publicUrl}/oauth/callback/docs?state=${"A".repeat(43)}&code=x`);
    expect(again.status).toBe(400);
  });

  test("two users never see each other's upstream identity", async () => {
    await consent(await consentUrlOf("bob"), "bob@docs");
    const answers = await Promise.all([whoami("alice"), whoami("bob"), whoami("alice"), whoami("bob")]);
    expect(answers).toEqual(["acting for alice@docs", "acting for bob@docs", "acting for alice@docs", "acting for bob@docs"]);
  });

  test("a connect link binds nothing by being opened: the page names the consumer and asks for a confirmation", async () => {
    const link = await consentUrlOf("mallory");
    const victim = new Browser();
    const opened = await victim.fetch(link);
    expect(opened.status).toBe(200);
    expect(opened.headers.get("location")).toBeNull();
    const text = await opened.text();
    expect(text).toContain("<strong>mallory</strong>");
    expect(text).toContain("account at docs");
    expect(opened.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    // A form posted from another site (no Strict cookie, or a guessed one) is refused.
    const page = await new Browser().open(link);
    const crossSite = await fetch(page.form!.action, { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(page.form!.fields).toString() });
    expect(crossSite.status).toBe(403);
    expect(crossSite.headers.get("location")).toBeNull();
    expect(await stack.gateway.vault!.get("mallory", "docs")).toBeUndefined();
  });

  test("account-linking CSRF: mallory's link completed by another user's browser does not bind that user's upstream account to mallory", async () => {
    const link = await consentUrlOf("mallory");
    // Mallory confirms in her own browser and forwards the authorization server's URL to a victim, who signs in there.
    const mallory = new Browser();
    const authorizationUrl = await mallory.openAndConfirm(link);
    const victim = new Browser();
    const back = await as.authorize(authorizationUrl, "victim@docs", `${publicUrl}/oauth/callback`);
    const landing = await victim.fetch(back);
    expect(landing.status).toBe(403);
    expect(await landing.text()).toContain("not confirmed in this browser");
    expect(await stack.gateway.vault!.get("mallory", "docs")).toBeUndefined();
    // The confirmed link cannot be confirmed again by anyone else.
    const again = await new Browser().open(link);
    expect(again.status).toBe(404);
    expect(again.form).toBeUndefined();
    // A callback with a forged binding cookie is refused the same way.
    const forged = await fetch(back, { redirect: "manual", headers: { cookie: "mfb_0000000000000000=x" } });
    expect(forged.status).toBe(403);
    expect(await stack.gateway.vault!.get("mallory", "docs")).toBeUndefined();
    expect(logs.some((line) => line.includes("did not confirm the link"))).toBe(true);
    // Nothing of the victim's reached mallory: her calls still ask for consent.
    await consentUrlOf("mallory");
  });

  test("a 2026-07-28 client gets input_required with a URL elicitation; its SDK opens it and retries; the link is never in the audit trail", async () => {
    // Where values are recorded too: a connect link read from the audit trail could be confirmed by its reader.
    expect((await stack.admin.request("PUT", "/v1/virtual-servers/work/audit", { recordValues: true, redactFields: [] })).status).toBeLessThan(300);
    const client = new ModernClient({ name: "modern", version: "1" }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: { pin: "2026-07-28" } } });
    const asked: string[] = [];
    client.setRequestHandler("elicitation/create", async (request) => {
      const params = request.params as { mode?: string; url?: string };
      expect(params.mode).toBe("url");
      asked.push(params.url!);
      await consent(params.url!, "carol@docs");
      return { action: "accept" };
    });
    await client.connect(new ModernTransport(new URL(stack.mcpUrl("work")), { requestInit: { headers: { authorization: `Bearer ${keys.carol}` } } }));
    expect(text(await client.callTool({ name: tool, arguments: {} }))).toBe("acting for carol@docs");
    expect(asked).toHaveLength(1);
    await client.close();
    const records = await eventually(async () => {
      const items = (await stack.admin.get("/v1/audit?consumer=carol&virtualServer=work&limit=1000")).body.items as Record<string, unknown>[];
      return items.some((r) => r.outcome === "input_required") && items.some((r) => r.outcome === "ok" && r.result) ? items : undefined;
    }, 5_000);
    expect(JSON.stringify(records)).not.toContain("/oauth/connect/");
    expect(JSON.stringify(records)).not.toContain(new URL(asked[0]!).pathname);
    expect((await stack.admin.request("PUT", "/v1/virtual-servers/work/audit", { recordValues: false, redactFields: [] })).status).toBeLessThan(300);
  });

  test("tokens are sealed at rest (AES-256-GCM, bound to their slot)", async () => {
    const vault = stack.gateway.vault!;
    const tokens = (await vault.get("alice", "docs"))!;
    const sealed = (await vault.sealed("alice", "docs"))!;
    expect(sealed.startsWith("k1.")).toBe(true);
    expect(sealed).not.toContain(tokens.accessToken);
    expect(sealed).not.toContain(tokens.refreshToken!);
    expect(Buffer.from(sealed.split(".")[2]!, "base64url").toString("latin1")).not.toContain("alice@docs");
  });

  test("a token near its expiry is refreshed before the call uses it", async () => {
    const before = (await stack.gateway.vault!.get("alice", "docs"))!;
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const refreshedFrom = Date.now();
    expect(await whoami("alice")).toBe("acting for alice@docs");
    const after = (await stack.gateway.vault!.get("alice", "docs"))!;
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.expiresAt!).toBeGreaterThan(before.expiresAt!);
    expect(upstream.calls.at(-1)!.jti).toBe((JSON.parse(Buffer.from(after.accessToken.split(".")[1]!, "base64url").toString()) as { jti: string }).jti);
    expect(logs.some((line) => line.includes("upstream token refreshed"))).toBe(true);
    // The session opened with the replaced token is ended, not left open until idle.
    await sessionEndedFor(before.accessToken, refreshedFrom);
  });

  test("consumers list and disconnect their connections; disconnecting revokes at the authorization server", async () => {
    const list = await fetch(`${publicUrl}/oauth/connections`, { headers: { authorization: `Bearer ${keys.bob}` } });
    expect(list.status).toBe(200);
    const { connections } = (await list.json()) as { connections: { upstream: string }[] };
    expect(connections.map((c) => c.upstream)).toEqual(["docs"]);
    expect((await fetch(`${publicUrl}/oauth/connections`)).status).toBe(401);

    // Bob's calls hold a connector session opened with his token.
    expect(await whoami("bob")).toBe("acting for bob@docs");
    const { refreshToken, accessToken } = (await stack.gateway.vault!.get("bob", "docs"))!;
    const since = Date.now();
    // Names no upstream can have (wildcards of the vault's keys, a NUL, a space) are no connection either.
    for (const name of ["*", ">", "a%20b", "a%00b", "docs.*"]) {
      const odd = await fetch(`${publicUrl}/oauth/connections/${name}`, { method: "DELETE", headers: { authorization: `Bearer ${keys.bob}` } });
      expect(odd.status, name).toBe(404);
    }
    const gone = await fetch(`${publicUrl}/oauth/connections/docs`, { method: "DELETE", headers: { authorization: `Bearer ${keys.bob}` } });
    expect(gone.status).toBe(204);
    expect(await stack.gateway.vault!.get("bob", "docs")).toBeUndefined();
    expect(await as.provider.RefreshToken.find(refreshToken!)).toBeUndefined();
    const nothingAfter = await sessionEndedFor(accessToken, since);
    await consentUrlOf("bob");
    await nothingAfter();
    // Alice's connection is hers alone.
    expect(await whoami("alice")).toBe("acting for alice@docs");
  });

  test("an admin revokes a consumer's connection: every gateway drops the tokens and the authorization server revokes them", async () => {
    expect(await whoami("carol")).toBe("acting for carol@docs");
    const { refreshToken, accessToken } = (await stack.gateway.vault!.get("carol", "docs"))!;
    const since = Date.now();
    expect((await stack.admin.delete("/v1/consumers/carol/connections/docs")).status).toBe(204);
    // The connector's session opened with the token ends within 1 s, not when idle (5 min).
    const nothingAfter = await sessionEndedFor(accessToken, since);
    await eventually(async () => (await stack.gateway.vault!.get("carol", "docs")) === undefined || undefined);
    await eventually(async () => (await as.provider.RefreshToken.find(refreshToken!)) === undefined || undefined);
    await consentUrlOf("carol");
    expect(await nothingAfter()).toBeLessThan(1_000);
    expect((await stack.admin.delete("/v1/consumers/nobody/connections/docs")).status).toBe(404);
    expect(await whoami("alice")).toBe("acting for alice@docs");
    // Carol's ETag moved with the revocation: a change under it is accepted (it was 409 for good).
    const etag = (await stack.admin.get("/v1/consumers/carol")).headers.get("etag")!;
    expect((await stack.admin.request("PUT", "/v1/consumers/carol", { groups: ["after-revocation"] }, { "if-match": etag })).status).toBe(200);
  });

  /** Another gateway replica on the same bus and vault (its own keys; `env`: more settings). */
  const gatewayWith = async (keySpec: string, env: Record<string, string> = {}): Promise<Gateway & { url: string; nc: NatsConnection }> => {
    const nc = await connectAs(nats, "gateway", `gateway-${keySpec.length}`);
    const config = loadGatewayConfig({ ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", GATEWAY_AUTH: "required", GATEWAY_PUBLIC_URL: publicUrl, GATEWAY_VAULT_KEYS: keySpec, GATEWAY_OAUTH_ALLOW_HTTP: "true", ...env });
    const gateway = await buildGateway({ config, logger: createLogger({ component: "gateway-replica", level: "silent" }), nc, env: SECRETS });
    await gateway.follower.caughtUp;
    await gateway.app.listen({ port: 0, host: "127.0.0.1" });
    return Object.assign(gateway, { url: `http://127.0.0.1:${(gateway.app.server.address() as AddressInfo).port}/mcp/work`, nc });
  };
  const stop = async (gateway: Gateway & { nc: NatsConnection }) => {
    await gateway.close();
    await gateway.nc.close();
  };

  test("attack: two replicas refreshing one user's rotating refresh token at once spend it once; the grant survives and the user is not asked again", async () => {
    await consent(await consentUrlOf("erin"), "erin@docs");
    expect(await whoami("erin")).toBe("acting for erin@docs");
    const other = await gatewayWith("k1=env:MANIFOLD_SECRET_VAULT_K1", { GATEWAY_VAULT_REFRESH_MARGIN_S: "598" });
    const clients = await Promise.all([stack.mcpUrl("work"), other.url, stack.mcpUrl("work"), other.url].map((url) => legacy("erin", url)));
    try {
      for (let round = 0; round < 2; round++) {
        const spent = (await stack.gateway.vault!.get("erin", "docs"))!.refreshToken!;
        // Past the refresh margin: every replica wants a fresh token for the same user at once.
        await new Promise((resolve) => setTimeout(resolve, 2_100));
        const answers = await Promise.all(clients.map((client) => client.callTool({ name: tool, arguments: {} }).then(text, (error: { code: number; message: string }) => `error ${error.code}: ${error.message}`)));
        expect(answers, `round ${round}`).toEqual(clients.map(() => "acting for erin@docs"));
        const now = (await stack.gateway.vault!.get("erin", "docs"))!;
        expect(now.refreshToken).not.toBe(spent);
        // The token the vault holds is the one the authorization server issued last, and still valid.
        expect(await as.provider.RefreshToken.find(now.refreshToken!)).toBeDefined();
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await stop(other);
    }
  });

  test("an authorization server that never answers holds the user's confirmation 10 s, then gets a named, retryable error", async () => {
    // Accepts connections and never answers: discovery of the authorization server waits on it.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const issuer = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      await registerUpstreams(stack, {
        name: "stuck",
        transport: { type: "streamable-http", url: upstream.url, auth: { type: "oauth", issuer, clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT" } },
      });
      const stuckTool = (await createVirtualServer(stack, "stuck-work", [{ upstream: "stuck", tool: "whoami" }]))["stuck/whoami"]!;
      expect((await stack.admin.post("/v1/virtual-servers/stuck-work/grants", { grantId: "erin", subject: { consumer: "erin" } })).status).toBe(201);
      const client = await legacy("erin", stack.mcpUrl("stuck-work"));
      const refusal = await rpcError(client.callTool({ name: stuckTool, arguments: {} }));
      await client.close();
      const browser = new Browser();
      const page = await browser.open((refusal.data.elicitations as { url: string }[])[0]!.url);
      const started = Date.now();
      const answer = await browser.confirm(page.form!);
      const waited = Date.now() - started;
      expect(waited).toBeGreaterThanOrEqual(9_500);
      expect(waited).toBeLessThan(15_000);
      // Named, retryable, and no secret in it (the client secret, the state and the verifier stay out).
      const body = await answer.text();
      expect(JSON.parse(body).error).toMatchObject({ code: -32010, message: "upstream 'stuck': its authorization server's metadata (RFC 8414) could not be read", data: { code: "upstream_unavailable" } });
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 30_000);

  test("a token without a refresh token takes no lease: calls within the refresh margin are served at once, one after another", async () => {
    await registerUpstreams(stack, {
      name: "notes",
      transport: { type: "streamable-http", url: upstream.url, auth: { type: "oauth", clientId: "manifold-no-refresh", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT" } },
    });
    const notes = (await createVirtualServer(stack, "notes-work", [{ upstream: "notes", tool: "whoami" }]))["notes/whoami"]!;
    expect((await stack.admin.post("/v1/virtual-servers/notes-work/grants", { grantId: "frank", subject: { consumer: "frank" } })).status).toBe(201);
    const first = await legacy("frank", stack.mcpUrl("notes-work"));
    const refusal = await rpcError(first.callTool({ name: notes, arguments: {} }));
    await first.close();
    await consent((refusal.data.elicitations as { url: string }[])[0]!.url, "frank@docs");
    const stored = (await stack.gateway.vault!.get("frank", "notes"))!;
    expect(stored.refreshToken).toBeUndefined();
    expect(stored.expiresAt).toBeDefined();
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const client = await legacy("frank", stack.mcpUrl("notes-work"));
    try {
      const took: number[] = [];
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        expect(text(await client.callTool({ name: notes, arguments: {} }))).toBe("acting for frank@docs");
        took.push(Date.now() - started);
      }
      // A lease left behind made every later call wait it out (about 15 s each).
      expect(Math.max(...took), took.join(", ")).toBeLessThan(2_000);
    } finally {
      await client.close();
    }
  });

  test("a slow authorization server and a replica that has not found it yet: the rotating refresh token is still spent once and the grant survives", async () => {
    await consent(await consentUrlOf("gina"), "gina@docs");
    // A second replica, started now: it has not found the authorization server yet.
    const cold = await gatewayWith("k1=env:MANIFOLD_SECRET_VAULT_K1", { GATEWAY_VAULT_REFRESH_MARGIN_S: "598" });
    const clients = [await legacy("gina", cold.url), await legacy("gina")];
    try {
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      slowServer = true;
      const answer = (client: Client) => client.callTool({ name: tool, arguments: {} }).then(text, (e: { code: number; message: string }) => `error ${e.code}: ${e.message}`);
      const onCold = answer(clients[0]!);
      // The warm replica asks while the cold one is still finding the server (6 s) or refreshing (9.5 s).
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const answers = await Promise.all([onCold, answer(clients[1]!)]);
      slowServer = false;
      expect(answers).toEqual(["acting for gina@docs", "acting for gina@docs"]);
      const now = (await stack.gateway.vault!.get("gina", "docs"))!;
      expect(await as.provider.RefreshToken.find(now.refreshToken!)).toBeDefined();
    } finally {
      slowServer = false;
      await Promise.all(clients.map((client) => client.close()));
      await stop(cold);
    }
  }, 60_000);

  test("key rotation: a gateway with a new key first reads the old records, re-seals them, and the old key can go", async () => {
    const ask = async (url: string) => {
      const client = await legacy("alice", url);
      try {
        return await client.callTool({ name: tool, arguments: {} }).then(text, (error: { code: number }) => `error ${error.code}`);
      } finally {
        await client.close();
      }
    };

    const rotated = await gatewayWith("k2=env:MANIFOLD_SECRET_VAULT_K2,k1=env:MANIFOLD_SECRET_VAULT_K1");
    try {
      expect(await ask(rotated.url)).toBe("acting for alice@docs");
      // It re-seals on start (alice's record, the only one left); a second pass finds nothing to move.
      await eventually(async () => (await rotated.vault!.sealed("alice", "docs"))?.startsWith("k2."));
      expect(await rotated.vault!.rewrap()).toEqual({ rewrapped: 0, unreadable: 0 });
    } finally {
      await stop(rotated);
    }
    const newOnly = await gatewayWith("k2=env:MANIFOLD_SECRET_VAULT_K2");
    try {
      expect(await ask(newOnly.url)).toBe("acting for alice@docs");
    } finally {
      await stop(newOnly);
    }
    // A gateway left with only the retired key opens nothing: the user is asked again, nothing leaks.
    const oldOnly = await gatewayWith("k1=env:MANIFOLD_SECRET_VAULT_K1");
    try {
      expect(await ask(oldOnly.url)).toBe("error -32042");
    } finally {
      await stop(oldOnly);
    }
  });

  test("attack: re-pointing an upstream does not send the tokens connected users obtained for the old server to the new one", async () => {
    await consent(await consentUrlOf("dora"), "dora@docs");
    expect(await whoami("dora")).toBe("acting for dora@docs");
    const { jti } = decodeJwt((await stack.gateway.vault!.get("dora", "docs"))!.accessToken);
    await using elsewhere = await startOAuthUpstream(as.issuer, as.jwksUrl);
    const repoint = (url: string) =>
      stack.admin.request("PUT", "/v1/upstreams/docs", { transport: { type: "streamable-http", url, auth: { type: "oauth", clientId: "manifold", clientSecret: "env:MANIFOLD_SECRET_DOCS_CLIENT" } } });
    expect((await repoint(elsewhere.url)).status).toBe(200);
    try {
      // Dora is asked to connect again, for the server the upstream now is; her old token went nowhere.
      const refusedCode = async () => {
        const client = await legacy("dora");
        try {
          return (await rpcError(client.callTool({ name: tool, arguments: {} }))).code;
        } finally {
          await client.close();
        }
      };
      await eventually(async () => ((await refusedCode()) === -32042 ? true : undefined), 5_000, 200);
      expect(elsewhere.requests.filter((r) => r.jti === jti)).toEqual([]);
      expect(await stack.gateway.vault!.get("dora", "docs")).toBeUndefined();
    } finally {
      expect((await repoint(upstream.url)).status).toBe(200);
    }
  });

  test("attack: an admin changing the upstream's authorization server is not handed connected users' tokens, on refresh or on disconnect", async () => {
    await consent(await consentUrlOf("gina"), "gina@docs");
    await consent(await consentUrlOf("hank"), "hank@docs");
    expect(await whoami("gina")).toBe("acting for gina@docs");
    expect(await whoami("hank")).toBe("acting for hank@docs");
    const held = await Promise.all(["gina", "hank"].map(async (c) => (await stack.gateway.vault!.get(c, "docs"))!));
    const secrets = held.flatMap((t) => [t.accessToken, t.refreshToken!]);
    const { base, seen, evil } = await adminsOwnServer();
    // The same upstream URL: only its authorization server changes.
    expect((await reconfigure(`${base}/`)).status).toBe(200);
    try {
      // Before: hank's refresh and access tokens went to the new server's revocation endpoint, with the client secret.
      expect((await stack.admin.delete("/v1/consumers/hank/connections/docs")).status).toBe(204);
      // Past the refresh margin (2 s): before, gina's refresh token went to the new server's token endpoint.
      await new Promise((resolve) => setTimeout(resolve, 2_100));
      const code = async () => {
        const client = await legacy("gina");
        try {
          return (await rpcError(client.callTool({ name: tool, arguments: {} }))).code;
        } finally {
          await client.close();
        }
      };
      await eventually(async () => ((await code()) === -32042 ? true : undefined), 5_000, 200);
      expect(await stack.gateway.vault!.get("gina", "docs")).toBeUndefined();
      // The new server was asked for its metadata, and given nothing of anyone's.
      expect(seen.length).toBeGreaterThan(0);
      for (const secret of [...secrets, SECRETS.MANIFOLD_SECRET_DOCS_CLIENT]) expect(seen.join("\n")).not.toContain(secret);
    } finally {
      expect((await reconfigure()).status).toBe(200);
      evil.close();
    }
  });

  test("attack: a link confirmed before the upstream's authorization server changed is not redeemed at the new one", async () => {
    expect((await stack.admin.post("/v1/consumers", { name: "jo" })).status).toBe(201);
    keys.jo = ((await stack.admin.post("/v1/consumers/jo/keys", {})).body as { key: string }).key;
    expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: "jo", subject: { consumer: "jo" } })).status).toBe(201);
    const browser = new Browser();
    const back = await as.authorize(await browser.openAndConfirm(await consentUrlOf("jo")), "jo@docs", `${publicUrl}/oauth/callback`);
    // An authorization server that does not name itself in its callback (RFC 9207's `iss` is optional):
    // nothing in the callback then says which server issued the code.
    back.searchParams.delete("iss");
    const { base, seen, evil } = await adminsOwnServer();
    expect((await reconfigure(`${base}/`)).status).toBe(200);
    try {
      // The gateway follows the registry within milliseconds; the browser comes back after that.
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Before: the code and its PKCE verifier went to the new server's token endpoint, with the client secret.
      const landing = await browser.fetch(back);
      expect(landing.status).toBe(502);
      const code = back.searchParams.get("code")!;
      expect(seen.join("\n")).not.toContain(code);
      expect(seen.join("\n")).not.toContain(SECRETS.MANIFOLD_SECRET_DOCS_CLIENT);
      expect(seen.some((r) => r.startsWith("POST"))).toBe(false);
      expect(await stack.gateway.vault!.get("jo", "docs")).toBeUndefined();
    } finally {
      expect((await reconfigure()).status).toBe(200);
      evil.close();
    }
  });

  test("attack: a connect link outlives neither its consumer nor passes to one created later under its name", async () => {
    const create = async () => {
      expect((await stack.admin.post("/v1/consumers", { name: "ivy" })).status).toBe(201);
      keys.ivy = ((await stack.admin.post("/v1/consumers/ivy/keys", {})).body as { key: string }).key;
      expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: "ivy", subject: { consumer: "ivy" } })).status).toBe(201);
    };
    await create();
    const before = await consentUrlOf("ivy");
    expect((await stack.admin.request("DELETE", "/v1/virtual-servers/work/grants/ivy")).status).toBe(204);
    expect((await stack.admin.delete("/v1/consumers/ivy")).status).toBe(204);
    await create();
    // Before: the old link was still good (for the flow's life), and binding it connected an account
    // to the new ivy; and the new ivy was handed the old link, which its first holder could confirm.
    await eventually(async () => ((await fetch(before)).status === 404 ? true : undefined), 2_000, 50);
    const after = await consentUrlOf("ivy");
    expect(after).not.toBe(before);
    await consent(after, "ivy@docs");
    expect(await whoami("ivy")).toBe("acting for ivy@docs");
  });

  // The flows bucket is made by the registry (helper-193) and keeps entries up to an hour: each
  // gateway judges a flow by the entry's write time against its own GATEWAY_OAUTH_FLOW_TTL_S.
  test("a connect link older than a gateway's flow TTL is refused by that gateway (judged by the entry's write time)", async () => {
    expect((await stack.admin.post("/v1/consumers", { name: "judy" })).status).toBe(201);
    keys.judy = ((await stack.admin.post("/v1/consumers/judy/keys", {})).body as { key: string }).key;
    expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: "judy", subject: { consumer: "judy" } })).status).toBe(201);
    const short = await startVaultStack(nats.url, { publicUrl, env: { GATEWAY_OAUTH_FLOW_TTL_S: "1" }, secretsEnv: SECRETS, connector: false });
    try {
      const link = await consentUrlOf("judy");
      const onShort = link.replace(publicUrl, short.gatewayUrl);
      expect((await fetch(onShort)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1_300));
      const [there, here] = [(await fetch(onShort)).status, (await fetch(link)).status];
      console.log(`a 1.3 s old connect link: ${there} on the gateway with a 1 s flow TTL, ${here} on the one with 600 s`);
      expect([there, here]).toEqual([404, 200]);
    } finally {
      await short.close();
    }
  });

  // The record was kept under the consumer's name alone, and removed on its deletion by a background
  // clean-up that can miss (a failed listing, clocks apart): a consumer created later under the name
  // then acted as the previous one at the upstream. Here the clean-up's miss is made by hand.
  test("attack: a connected account left behind by a deleted consumer is not used by one created later under its name", async () => {
    const create = async (name: string) => {
      expect((await stack.admin.post("/v1/consumers", { name })).status).toBe(201);
      keys[name] = ((await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body as { key: string }).key;
      expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: name, subject: { consumer: name } })).status).toBe(201);
    };
    await create("jay");
    await consent(await consentUrlOf("jay"), "jay@docs");
    expect(await whoami("jay")).toBe("acting for jay@docs");
    const left = (await stack.gateway.vault!.get("jay", "docs"))!;
    expect((await stack.admin.request("DELETE", "/v1/virtual-servers/work/grants/jay")).status).toBe(204);
    expect((await stack.admin.delete("/v1/consumers/jay")).status).toBe(204);
    await create("jay");
    await stack.gateway.vault!.put("jay", "docs", left);
    const client = await legacy("jay");
    try {
      expect((await rpcError(client.callTool({ name: tool, arguments: {} }))).code).toBe(-32042);
    } finally {
      await client.close();
    }
    expect(await stack.gateway.vault!.get("jay", "docs")).toBeUndefined();
  });

  // Last: it takes the bus away. A consumer's connections are read from the bus; without it the
  // answer names the outage and when to come back, as the MCP endpoints' do, not a bare 500.
  test("while NATS is down, listing one's connections is a 503 bus_unavailable with Retry-After", async () => {
    nats.process.kill("SIGKILL");
    const listed = await eventually(async () => {
      const res = await fetch(`${publicUrl}/oauth/connections`, { headers: { authorization: `Bearer ${keys.bob}` } });
      return res.status === 200 ? undefined : res;
    });
    const body = (await listed.json()) as { error: { data: { code: string } } };
    expect({ status: listed.status, code: body.error.data.code, retryAfter: listed.headers.get("retry-after") }).toEqual({ status: 503, code: "bus_unavailable", retryAfter: "1" });
  });
});


