import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack } from "../helpers/vaultStack.js";

const SERVICE_TOKEN = `svc-token-${randomBytes(12).toString("hex")}`;
const SERVICE_KEY = `svc-key-${randomBytes(12).toString("hex")}`;
const ALICE_TOKEN = `alice-docs-token-${randomBytes(12).toString("hex")}`;
const BOB_TOKEN = `bob-plain-token-${randomBytes(12).toString("hex")}`;

/**
 * A registration's `secretHeaders` are the connector's own service credential (docs/identity.md:
 * discovery runs with no user around). On a per-user upstream (`auth: { type: "oauth" }`) each
 * caller's session carries the caller's token, and the service credential went along on it: an
 * `X-Api-Key` as it was, and an `authorization` registered in lower case beside the caller's
 * `Authorization`, joined into `Bearer <service>, Bearer <alice>`: an upstream reading the first
 * credential served Alice's calls and reads as the service account. A pass-through session of an upstream without `auth` had the
 * same duplicate. What the upstream saw is reported back, with the credentials' values replaced
 * by their role so that the connector's echo cleaning does not hide them.
 */
let nats: NatsServer;
let stack: Stack;
let docs: SessionServer<McpServer>;
let plain: SessionServer<McpServer>;
let keys: Record<string, string>;
const exposed: Record<string, string> = {};

const seen = (extra: RequestHandlerExtra<ServerRequest, ServerNotification>) => {
  const headers = extra.requestInfo?.headers ?? {};
  const name = (value: unknown) =>
    String(value ?? "none")
      .replaceAll(SERVICE_TOKEN, "SERVICE_TOKEN")
      .replaceAll(SERVICE_KEY, "SERVICE_KEY")
      .replaceAll(ALICE_TOKEN, "ALICE")
      .replaceAll(BOB_TOKEN, "BOB");
  return `authorization=${name(headers.authorization)} x-api-key=${name(headers["x-api-key"])} x-tenant=${name(headers["x-tenant"])}`;
};

const upstream = (name: string) =>
  serveSessions(() => {
    const server = new McpServer({ name, version: "1.0.0" });
    server.registerTool("whoami", { description: "Says what credentials it was called with" }, async (extra) => ({ content: [{ type: "text", text: seen(extra) }] }));
    server.registerResource("profile", "me://profile", { description: "the signed-in user's profile" }, async (uri, extra) => ({ contents: [{ uri: uri.href, text: seen(extra) }] }));
    return server;
  });

beforeAll(async () => {
  nats = await startNats();
  [docs, plain] = await Promise.all([upstream("docs"), upstream("plain")]);
  stack = await startVaultStack(nats.url, { secretsEnv: { MANIFOLD_SECRET_SERVICE_TOKEN: `Bearer ${SERVICE_TOKEN}`, MANIFOLD_SECRET_SERVICE_KEY: SERVICE_KEY } });
  const service = { authorization: "env:MANIFOLD_SECRET_SERVICE_TOKEN", "X-Api-Key": "env:MANIFOLD_SECRET_SERVICE_KEY" };
  await registerUpstreams(
    stack,
    {
      name: "docs",
      // The tenant is a plain header: meant for every session, the callers' own too.
      transport: { type: "streamable-http", url: docs.url, headers: { "X-Tenant": "acme" }, secretHeaders: service, auth: { type: "oauth", clientId: "manifold", issuer: "http://127.0.0.1:9/" } },
    },
    { name: "plain", transport: { type: "streamable-http", url: plain.url, headers: { "X-Tenant": "acme" }, secretHeaders: service } },
  );
  const created = await stack.admin.post("/v1/virtual-servers", {
    name: "vs",
    tools: [
      { upstream: "docs", tool: "whoami" },
      { upstream: "plain", tool: "whoami" },
    ],
    resources: [{ upstream: "docs", uri: "me://profile" }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  for (const t of created.body.tools as { upstream: string; exposedName: string }[]) exposed[t.upstream] = t.exposedName;
  keys = await grantedConsumers(stack, "vs", ["alice", "bob"]);
  await stack.gateway.vault!.put("alice", "docs", { accessToken: ALICE_TOKEN, issuer: "http://127.0.0.1:9/", resource: docs.url, consumerCreated: stack.gateway.projection.consumer("alice")!.created, connectedAt: Date.now() });
});

afterAll(async () => {
  await stack?.close();
  await Promise.all([docs?.close(), plain?.close()]);
  await nats?.stop();
});

const agent = async (consumer: string, upstreamHeaders?: Record<string, Record<string, string>>) => {
  const client = new Client({ name: "agent", version: "1" });
  const headers: Record<string, string> = { authorization: `Bearer ${keys[consumer]}` };
  if (upstreamHeaders) headers["X-Manifold-Upstream-Headers"] = JSON.stringify(upstreamHeaders);
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("vs")), { requestInit: { headers } }));
  return client;
};
const text = (result: unknown) => (result as { content: { text: string }[] }).content[0]!.text;

test("attack: a per-user upstream's caller session never carries the registration's service credential", async () => {
  const client = await agent("alice");
  // Before: "authorization=SERVICE_TOKEN x-api-key=SERVICE_KEY x-tenant=acme": Alice acted as the service account.
  expect(text(await client.callTool({ name: exposed.docs!, arguments: {} }))).toBe("authorization=Bearer ALICE x-api-key=none x-tenant=acme");
  const [resource] = (await client.listResources()).resources;
  const read = await client.readResource({ uri: resource!.uri });
  expect((read.contents[0] as { text: string }).text).toBe("authorization=Bearer ALICE x-api-key=none x-tenant=acme");
  await client.close();
});

test("attack: a caller's pass-through Authorization replaces the registration's whatever its case, never goes beside it", async () => {
  const client = await agent("bob", { plain: { Authorization: `Bearer ${BOB_TOKEN}` } });
  // Before: "authorization=SERVICE_TOKEN …": the registration's lower-case header went first, and won.
  expect(text(await client.callTool({ name: exposed.plain!, arguments: {} }))).toBe("authorization=Bearer BOB x-api-key=SERVICE_KEY x-tenant=acme");
  await client.close();
});

test("the shared session (discovery, callers without credentials of their own) keeps the service credential", async () => {
  const client = await agent("bob");
  expect(text(await client.callTool({ name: exposed.plain!, arguments: {} }))).toBe("authorization=Bearer SERVICE_TOKEN x-api-key=SERVICE_KEY x-tenant=acme");
  await client.close();
});
