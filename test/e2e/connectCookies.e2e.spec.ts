import { type NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startAuthorizationServer, type AuthorizationServerFixture } from "../fixtures/authorizationServer.js";
import { startOAuthUpstream, type OAuthUpstream } from "../fixtures/oauthUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { Browser, connectLinkFor } from "../helpers/connectLink.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack, vaultClient } from "../helpers/vaultStack.js";

const PUBLIC_URL = "https://gateway.example";

// attack (identity review, helper-101): the connect flow's cookies (`mfc_…` confirms a link, `mfb_…` binds its
// callback to the browser that confirmed it) could be set by a sibling subdomain, or by a forged plain-HTTP answer
// for the gateway's host: one planted with the binding of a link its owner confirmed made a victim's callback bind
// the victim's account to that owner. Over https they are `__Host-` cookies, which a browser takes only from the
// host itself, over https, for the whole host.
describe("connect-flow cookies behind an https public URL", () => {
  let nats: NatsServer;
  let stack: Stack;
  let server: AuthorizationServerFixture;
  let docs: OAuthUpstream;
  let tool = "";
  let key = "";

  beforeAll(async () => {
    nats = await startNats();
    server = await startAuthorizationServer({
      clients: [vaultClient(PUBLIC_URL, ["docs"], { refresh: false })],
    });
    docs = await startOAuthUpstream(server.issuer, server.jwksUrl);
    stack = await startVaultStack(nats.url, { publicUrl: PUBLIC_URL });
    await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: docs.url, auth: { type: "oauth", clientId: "manifold" } } });
    tool = (await createVirtualServer(stack, "work", [{ upstream: "docs", tool: "whoami" }]))["docs/whoami"]!;
    expect((await stack.admin.post("/v1/consumers", { name: "alice" })).status).toBe(201);
    key = ((await stack.admin.post("/v1/consumers/alice/keys", {})).body as { key: string }).key;
    expect((await stack.admin.post("/v1/virtual-servers/work/grants", { grantId: "alice", subject: { consumer: "alice" } })).status).toBe(201);
  });
  afterAll(async () => {
    await stack?.close();
    await Promise.all([server?.close(), docs?.close()]);
    await nats?.stop();
  });

  test("are __Host- cookies: Secure, for the whole host, set and cleared under the same name", async () => {
    const link = await connectLinkFor(stack.mcpUrl("work"), key, tool);
    expect(link.startsWith(`${PUBLIC_URL}/oauth/connect/`)).toBe(true);
    // The gateway itself serves plain HTTP here; what its links name is the https public URL.
    const served = link.replace(PUBLIC_URL, new URL(stack.mcpUrl("work")).origin);
    const browser = new Browser();
    const opened = await browser.fetch(served);
    const [confirm] = opened.headers.getSetCookie();
    expect(confirm).toMatch(/^__Host-mfc_[0-9a-f]{16}=[^;]+; Path=\/; .*HttpOnly; SameSite=Strict; Secure$/);
    const page = await browser.open(served);
    const confirmed = await browser.confirm(page.form!);
    expect(confirmed.status).toBe(303);
    expect(new URL(confirmed.headers.get("location")!).searchParams.get("redirect_uri")).toBe(`${PUBLIC_URL}/oauth/callback/docs`);
    const cookies = confirmed.headers.getSetCookie();
    expect(cookies[0]).toMatch(/^__Host-mfb_[0-9a-f]{16}=[^;]+; Path=\/; .*HttpOnly; SameSite=Lax; Secure$/);
    expect(cookies[1]).toMatch(/^__Host-mfc_[0-9a-f]{16}=; Path=\/; Max-Age=0; Secure$/);
  });
});
