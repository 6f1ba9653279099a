import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startIdentityProvider, type IdentityFixture } from "../fixtures/jwks.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

// Group names are one namespace: the registry's consumer groups and every identity provider's groups
// claim. An identity provider registered so that a partner's consumer can sign in could claim any
// group in its tokens (found by an attacker run): a group grant must admit only the groups a
// provider was registered to assert.
describe("an identity provider asserts only the groups it was registered for", () => {
  let nats: NatsServer;
  let stack: Stack;
  let payroll: RecordingUpstream;
  let corp: IdentityFixture;
  let partner: IdentityFixture;
  let aliceKey: string;
  let names: Record<string, string>;

  const post = (vs: string, token: string) =>
    fetch(stack.mcpUrl(vs), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
      body: JSON.stringify(INIT),
    });

  beforeAll(async () => {
    nats = await startNats();
    [stack, payroll, corp, partner] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), startRecordingUpstream("payroll"), startIdentityProvider(), startIdentityProvider()]);
    await registerUpstreams(stack, { name: "payroll", transport: { type: "streamable-http", url: payroll.url } });
    names = await createVirtualServer(stack, "payroll", [{ upstream: "payroll", tool: "echo" }]);
    await createVirtualServer(stack, "partner-tools", [{ upstream: "payroll", tool: "add" }]);
    // corp may assert payroll-admins; the partner's provider is registered for its consumer's sign-in only.
    const registered = await stack.admin.post("/v1/identity-providers", { name: "corp", issuer: corp.issuer, audience: "manifold", jwksUrl: corp.jwksUrl, groups: ["payroll-admins"] });
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
    expect(registered.body).toMatchObject({ groups: ["payroll-admins"] });
    expect((await stack.admin.post("/v1/identity-providers", { name: "partner", issuer: partner.issuer, audience: "manifold", jwksUrl: partner.jwksUrl })).status).toBe(201);
    expect((await stack.admin.post("/v1/consumers", { name: "alice", groups: ["payroll-admins"] })).status).toBe(201);
    aliceKey = (await stack.admin.post("/v1/consumers/alice/keys", {})).body.key;
    expect((await stack.admin.post("/v1/virtual-servers/payroll/grants", { grantId: "admins", subject: { group: "payroll-admins" } })).status).toBe(201);
    expect((await stack.admin.post("/v1/consumers", { name: "partner-bot", identityProviders: ["partner"] })).status).toBe(201);
    expect((await stack.admin.post("/v1/virtual-servers/partner-tools/grants", { grantId: "partner", subject: { consumer: "partner-bot" } })).status).toBe(201);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([payroll?.close(), corp?.close(), partner?.close()]);
    await nats?.stop();
  });

  test("the registry's group and the provider registered for it reach payroll; the partner's consumer reaches only its own tools", async () => {
    expect((await post("payroll", aliceKey)).status).toBe(200);
    expect((await post("payroll", await corp.sign({ sub: "someone-at-corp", groups: ["payroll-admins"] }))).status).toBe(200);
    const bot = await partner.sign({ sub: "partner-bot" });
    expect((await post("partner-tools", bot)).status).toBe(200);
    expect((await post("payroll", bot)).status).toBe(404);
  });

  test("attack: the partner's token claiming payroll-admins, for a bare subject, is not admitted", async () => {
    expect((await post("payroll", await partner.sign({ sub: "anyone-at-partner", groups: ["payroll-admins"] }))).status).toBe(404);
  });

  test("attack: the partner's own consumer with payroll-admins added to its token reaches nothing of payroll", async () => {
    const token = await partner.sign({ sub: "partner-bot", groups: ["payroll-admins"] });
    const before = payroll.calls.length;
    // Before: admitted, and the tool call reached the payroll upstream.
    expect((await post("payroll", token)).status).toBe(404);
    await expect(connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("payroll")), { requestInit: { headers: { authorization: `Bearer ${token}` } } }))).rejects.toThrow();
    expect(payroll.calls.length - before).toBe(0);
    expect(names["payroll/echo"]).toBeDefined();
  });
});
