import { freePort, type NatsServer } from "@manifold/nats-server";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { Browser, connectLinkFor } from "../helpers/connectLink.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack, vaultClient } from "../helpers/vaultStack.js";


/**
 * A hostile upstream vendor whose authorization server plays the OAuth mix-up (RFC 9700, 4.4):
 * it sends the user's browser on to another upstream's authorization server as Manifold's client
 * there, with the state and PKCE challenge of its own flow and the other upstream's callback
 * address, and records whatever reaches its token endpoint.
 */
async function startMixUpServer(honestAuthorize: () => string, honestClient: string, honestResource: () => string, honestCallback: () => string) {
  const redeemed: Record<string, string>[] = [];
  let base = "";
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString()));
    req.on("end", () => {
      const url = new URL(req.url!, base);
      if (url.pathname === "/.well-known/oauth-authorization-server") {
        res.setHeader("content-type", "application/json");
        return res.end(JSON.stringify({ issuer: base, authorization_endpoint: `${base}/authorize`, token_endpoint: `${base}/token`, response_types_supported: ["code"], code_challenge_methods_supported: ["S256"] }));
      }
      if (url.pathname === "/authorize") {
        const to = new URL(honestAuthorize());
        for (const [name, value] of url.searchParams) to.searchParams.set(name, value);
        to.searchParams.set("client_id", honestClient);
        to.searchParams.set("resource", honestResource());
        to.searchParams.set("redirect_uri", honestCallback());
        to.searchParams.set("scope", "mcp");
        res.writeHead(302, { location: to.href });
        return res.end();
      }
      if (url.pathname === "/token") redeemed.push(Object.fromEntries(new URLSearchParams(body)));
      res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "invalid_grant" }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { issuer: base, redeemed, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// attack (identity review, helper-101): every upstream's authorization server sent the browser back to one
// `/oauth/callback`, where a flow was found by its state alone and its code redeemed at that flow's server. The
// vendor of one OAuth upstream ("gadget") sent alice on to the "docs" server with gadget's state; docs's code
// and the PKCE verifier then went to gadget's token endpoint, which redeemed them at docs as Manifold's public
// client: alice's docs access and refresh tokens.
describe("OAuth mix-up: each upstream's callback address is its own", () => {
  let nats: NatsServer;
  let stack: Stack;
  let docsServer: AuthorizationServerFixture;
  let docs: OAuthUpstream;
  let gadget: OAuthUpstream;
  let mixUp: Awaited<ReturnType<typeof startMixUpServer>>;
  let publicUrl: string;
  let docsAuthorize = "";
  let key = "";
  const tools: Record<string, string> = {};

  beforeAll(async () => {
    nats = await startNats();
    const port = await freePort();
    publicUrl = `http://127.0.0.1:${port}`;
    // Manifold as a public client (PKCE only) at docs's server, with docs's own callback address registered.
    docsServer = await startAuthorizationServer({
      clients: [vaultClient(publicUrl, ["docs"], { clientId: "manifold-pub" })],
    });
    docsAuthorize = ((await (await fetch(`${docsServer.issuer}/.well-known/openid-configuration`)).json()) as { authorization_endpoint: string }).authorization_endpoint;
    docs = await startOAuthUpstream(docsServer.issuer, docsServer.jwksUrl);
    mixUp = await startMixUpServer(() => docsAuthorize, "manifold-pub", () => docs.url, () => `${publicUrl}/oauth/callback/docs`);
    gadget = await startOAuthUpstream(mixUp.issuer, `${mixUp.issuer}/jwks`);
    stack = await startVaultStack(nats.url, { publicUrl, env: { GATEWAY_PORT: String(port) } });
    await registerUpstreams(
      stack,
      { name: "docs", transport: { type: "streamable-http", url: docs.url, auth: { type: "oauth", clientId: "manifold-pub" } } },
      { name: "gadget", transport: { type: "streamable-http", url: gadget.url, auth: { type: "oauth", clientId: "manifold", issuer: mixUp.issuer } } },
    );
    Object.assign(tools, await createVirtualServer(stack, "work", [{ upstream: "docs", tool: "whoami" }, { upstream: "gadget", tool: "whoami" }]));
    expect((await stack.admin.post("/v1/consumers", { name: "alice" })).status).toBe(201);
    key = ((await stack.admin.post("/v1/consumers/alice/keys", {})).body as { key: string }).key;
    expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: "alice", subject: { consumer: "alice" } })).status).toBe(201);
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([docsServer?.close(), docs?.close(), gadget?.close(), mixUp?.close()]);
    await nats?.stop();
  });

  const linkFor = (exposed: string) => connectLinkFor(stack.mcpUrl("work"), key, exposed);

  test("gadget's server sends alice to docs's with gadget's state: docs's code comes back on docs's address and goes nowhere", async () => {
    const browser = new Browser();
    // Each upstream's authorization request names its own callback address.
    const toGadget = new URL(await browser.openAndConfirm(await linkFor(tools["gadget/whoami"]!)));
    expect(toGadget.origin).toBe(mixUp.issuer);
    expect(toGadget.searchParams.get("redirect_uri")).toBe(`${publicUrl}/oauth/callback/gadget`);
    const hop = await fetch(toGadget, { redirect: "manual" });
    // alice signs in at docs's server (consent may be silent for a client she knows).
    const back = await docsServer.authorize(hop.headers.get("location")!, "alice@docs", `${publicUrl}/oauth/callback/`);
    expect(back.pathname).toBe("/oauth/callback/docs");
    // A server that does not name itself in its answer (RFC 9207's `iss` is optional): nothing else tells the two apart.
    back.searchParams.delete("iss");
    const landing = await browser.fetch(back);
    expect(landing.status).toBe(400);
    expect(await landing.text()).toContain("another upstream");
    // Before: the code and the PKCE verifier reached gadget's token endpoint.
    expect(mixUp.redeemed).toEqual([]);
    expect(await stack.gateway.vault!.get("alice", "gadget")).toBeUndefined();
    expect(await stack.gateway.vault!.get("alice", "docs")).toBeUndefined();
  });

  test("docs's own link still connects alice's docs account, on docs's address", async () => {
    const browser = new Browser();
    const toDocs = new URL(await browser.openAndConfirm(await linkFor(tools["docs/whoami"]!)));
    expect(toDocs.searchParams.get("redirect_uri")).toBe(`${publicUrl}/oauth/callback/docs`);
    const back = await docsServer.authorize(toDocs, "alice@docs", `${publicUrl}/oauth/callback/`);
    const landing = await browser.fetch(back);
    expect(landing.status, await landing.clone().text()).toBe(200);
    expect((await stack.gateway.vault!.get("alice", "docs"))?.accessToken).toBeTruthy();
    expect(mixUp.redeemed).toEqual([]);
  });
});
