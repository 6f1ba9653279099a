import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack } from "../helpers/vaultStack.js";

const SERVICE_KEY = "svc-discovery-key-5f0c2a";
const ALICE_TOKEN = `alice-docs-token-${randomBytes(12).toString("hex")}`;

/**
 * An upstream registered with `auth: { type: "oauth" }` acts as each consumer, with the consumer's
 * own token: its calls did, but its resources, prompts and completions went on the connector's
 * shared session, with the credential the registration gives for discovery (`secretHeaders`). So
 * a consumer that never connected an account read the upstream's "me://profile" as the service
 * account, and a connected one read it as the service account too, not as itself.
 */
let nats: NatsServer;
let stack: Stack;
let upstream: SessionServer<McpServer>;
let keys: Record<string, string>;
/** What each read of the profile was sent: its Authorization and X-Api-Key headers. */
const reads: string[] = [];

beforeAll(async () => {
  nats = await startNats();
  upstream = await serveSessions(() => {
    const server = new McpServer({ name: "docs", version: "1.0.0" });
    server.registerTool("whoami", { description: "Says whose account it acts for" }, async () => ({ content: [{ type: "text", text: "someone" }] }));
    server.registerResource("profile", "me://profile", { description: "the signed-in user's profile" }, async (uri, extra) => {
      const headers = extra.requestInfo?.headers ?? {};
      const sent = `authorization=${String(headers.authorization ?? "none")} x-api-key=${String(headers["x-api-key"] ?? "none")}`;
      reads.push(sent);
      return { contents: [{ uri: uri.href, text: `profile read with ${sent}` }] };
    });
    return server;
  });
  stack = await startVaultStack(nats.url, { secretsEnv: { MANIFOLD_SECRET_SERVICE: SERVICE_KEY } });
  await registerUpstreams(stack, {
    name: "docs",
    // The service credential lets the connector list the upstream with no user around (docs/identity.md).
    transport: { type: "streamable-http", url: upstream.url, secretHeaders: { "X-Api-Key": "env:MANIFOLD_SECRET_SERVICE" }, auth: { type: "oauth", clientId: "manifold", issuer: "http://127.0.0.1:9/" } },
  });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "vs", tools: [{ upstream: "docs", tool: "whoami" }], resources: [{ upstream: "docs", uri: "me://profile" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  keys = await grantedConsumers(stack, "vs", ["alice", "mallory"]);
  // Alice connected her account (the vault record a completed consent writes; no refresh needed).
  await stack.gateway.vault!.put("alice", "docs", { accessToken: ALICE_TOKEN, issuer: "http://127.0.0.1:9/", resource: upstream.url, consumerCreated: stack.gateway.projection.consumer("alice")!.created, connectedAt: Date.now() });
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

const agent = async (consumer: string) => {
  const client = new Client({ name: "agent", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("vs")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
  const [resource] = (await client.listResources()).resources;
  return { client, uri: resource!.uri };
};

test("attack: a consumer that never connected its account reads a per-user upstream's resource with nothing but a consent request", async () => {
  const { client, uri } = await agent("mallory");
  const before = reads.length;
  // Before: {"text":"profile read with authorization=none x-api-key=[redacted]"}, the upstream having been sent the service key.
  const refusal = await rpcError(client.readResource({ uri }));
  expect(refusal.code).toBe(-32042);
  expect(reads.slice(before)).toEqual([]);
  await client.close();
});

test("a connected consumer's read is made with its own token, on its own session, and its token is not handed back", async () => {
  const { client, uri } = await agent("alice");
  const before = reads.length;
  const read = await client.readResource({ uri });
  // As her calls are: her token in Authorization, never the registration's service key (`perUserServiceSecret.e2e.spec.ts`).
  expect(reads.slice(before)).toEqual([`authorization=Bearer ${ALICE_TOKEN} x-api-key=none`]);
  expect(JSON.stringify(read)).not.toContain(ALICE_TOKEN);
  expect(JSON.stringify(read)).not.toContain(SERVICE_KEY);
  await client.close();
});
