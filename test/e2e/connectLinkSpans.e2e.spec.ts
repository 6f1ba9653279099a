import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack } from "../helpers/vaultStack.js";
import { recordSpans } from "../helpers/spans.js";

/**
 * A connect link binds whoever confirms it first to its consumer's upstream account slot, so it is
 * the consumer's alone: never in the audit trail, never in a log. With tracing on, a read or a
 * prompt of a per-user upstream by a consumer that has not connected its account is answered with
 * one; the gateway's span for the request must not keep it (spans go to a collector, read by more
 * people than the consumer).
 */
let nats: NatsServer;
let stack: Stack;
let upstream: SessionServer<McpServer>;
let keys: Record<string, string>;
const logs: string[] = [];
const spans = recordSpans();

beforeAll(async () => {
  spans.register();
  nats = await startNats();
  upstream = await serveSessions(() => {
    const server = new McpServer({ name: "docs", version: "1.0.0" });
    server.registerTool("whoami", { description: "Says whose account it acts for" }, async () => ({ content: [{ type: "text", text: "someone" }] }));
    server.registerResource("profile", "me://profile", { description: "the signed-in user's profile" }, async (uri) => ({ contents: [{ uri: uri.href, text: "profile" }] }));
    server.registerPrompt("brief", { description: "a brief" }, async () => ({ messages: [{ role: "user", content: { type: "text", text: "brief" } }] }));
    return server;
  });
  stack = await startVaultStack(nats.url, { logs, secretsEnv: { MANIFOLD_SECRET_SERVICE: "svc-discovery-key-5f0c2a" } });
  await registerUpstreams(stack, {
    name: "docs",
    transport: { type: "streamable-http", url: upstream.url, secretHeaders: { "X-Api-Key": "env:MANIFOLD_SECRET_SERVICE" }, auth: { type: "oauth", clientId: "manifold", issuer: "http://127.0.0.1:9/" } },
  });
  const created = await stack.admin.post("/v1/virtual-servers", {
    name: "vs",
    naming: { policy: "bare" },
    tools: [{ upstream: "docs", tool: "whoami" }],
    resources: [{ upstream: "docs", uri: "me://profile" }],
    prompts: [{ upstream: "docs", prompt: "brief" }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  keys = await grantedConsumers(stack, "vs", ["mallory"]);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await spans[Symbol.asyncDispose]();
});

test("attack: the connect link a consumer is answered with is in no span and no log", async () => {
  const client = new Client({ name: "agent", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("vs")), { requestInit: { headers: { authorization: `Bearer ${keys.mallory}` } } }));
  try {
    const refusals = [
      await rpcError(client.callTool({ name: "whoami", arguments: {} })),
      await rpcError(client.readResource({ uri: (await client.listResources()).resources[0]!.uri })),
      await rpcError(client.getPrompt({ name: "brief" })),
    ];
    const links: string[] = refusals.map((r) => r.data.elicitations[0].url);
    expect(links.every((link) => link.startsWith("http://127.0.0.1:1/"))).toBe(true);
    // The link's secret part: what follows the gateway's address.
    const secrets = links.map((link) => new URL(link).pathname.split("/").at(-1)!);
    const leaking = spans.holding(secrets);
    expect(leaking.names, `${leaking.names.length} of ${leaking.searched} spans hold a connect link`).toEqual([]);
    expect(logs.filter((l) => secrets.some((secret) => l.includes(secret)))).toEqual([]);
  } finally {
    await client.close();
  }
});
