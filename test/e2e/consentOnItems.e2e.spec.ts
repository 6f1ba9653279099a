import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, type Stack } from "../helpers/stack.js";
import { startVaultStack } from "../helpers/vaultStack.js";

/**
 * Attack (helper-187): on a per-user OAuth upstream a 2026-07-28 client that declares
 * `elicitation.url` was answered -32021 "requires elicitation.url" (MissingRequiredClientCapability)
 * for prompts/get and resources/read: it had declared the capability. MRTR (basic/patterns/mrtr,
 * "Supported Requests") allows `input_required` on prompts/get, resources/read and tools/call, so
 * these two now get the consent form tools/call gets: a URL elicitation in `inputRequests`.
 */
let nats: NatsServer;
let stack: Stack;
let upstream: SessionServer<McpServer>;
let keys: Record<string, string>;
/** The Authorization header each read or prompt reached the upstream with. */
const seen: string[] = [];
const token = (consumer: string) => `${consumer}-docs-token-${randomBytes(8).toString("hex")}`;

beforeAll(async () => {
  nats = await startNats();
  upstream = await serveSessions(() => {
    const server = new McpServer({ name: "docs", version: "1.0.0" });
    server.registerTool("noop", { description: "Does nothing" }, async () => ({ content: [] }));
    server.registerResource("account", "me://account", { description: "the signed-in user's account" }, async (uri, extra) => {
      seen.push(`read ${String(extra.requestInfo?.headers.authorization ?? "none")}`);
      return { contents: [{ uri: uri.href, text: "account" }] };
    });
    server.registerPrompt("greet", { description: "Greets the signed-in user" }, async (extra) => {
      seen.push(`prompt ${String(extra.requestInfo?.headers.authorization ?? "none")}`);
      return { messages: [{ role: "user", content: { type: "text", text: "hello" } }] };
    });
    return server;
  });
  stack = await startVaultStack(nats.url, {});
  await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: upstream.url, auth: { type: "oauth", clientId: "manifold", issuer: "http://127.0.0.1:9/" } } });
  const created = await stack.admin.post("/v1/virtual-servers", {
    name: "vs",
    tools: [{ upstream: "docs", tool: "noop" }],
    resources: [{ upstream: "docs", uri: "me://account" }],
    prompts: [{ upstream: "docs", prompt: "greet" }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  keys = await grantedConsumers(stack, "vs", ["nina", "otto", "pia", "quin", "rex"]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

/** A 2.4 client pinned to 2026-07-28 declaring `elicitation.url`; answering the URL elicitation stands for the user's completed consent (the vault record it writes). */
async function declaringAgent(consumer: string, accessToken: string) {
  const client = new ModernClient({ name: "modern", version: "1" }, { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: { pin: "2026-07-28" } } });
  const asked: string[] = [];
  client.setRequestHandler("elicitation/create", async (request) => {
    const params = request.params as { mode?: string; url?: string };
    asked.push(`${params.mode} ${params.url?.includes("/oauth/connect/") ? "connect-link" : params.url}`);
    await stack.gateway.vault!.put(consumer, "docs", { accessToken, issuer: "http://127.0.0.1:9/", resource: upstream.url, consumerCreated: stack.gateway.projection.consumer(consumer)!.created, connectedAt: Date.now() });
    return { action: "accept" as const };
  });
  await client.connect(new ModernTransport(new URL(stack.mcpUrl("vs")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
  return { client, asked };
}

test("attack: resources/read by a client declaring elicitation.url gets the consent elicitation, not -32021; its retry reads with the user's token", async () => {
  const own = token("nina");
  const { client, asked } = await declaringAgent("nina", own);
  try {
    const [resource] = (await client.listResources()).resources;
    // Before: McpError -32021 "upstream 'docs' needs your authorization …", data.requiredCapabilities.elicitation.url.
    const before = seen.length;
    const read = await client.readResource({ uri: resource!.uri });
    expect(asked).toEqual(["url connect-link"]);
    expect(read.contents).toMatchObject([{ text: "account" }]);
    expect(seen.slice(before)).toEqual([`read Bearer ${own}`]);
  } finally {
    await client.close();
  }
}, 60_000);

test("attack: prompts/get by a client declaring elicitation.url gets the consent elicitation, not -32021; its retry runs with the user's token", async () => {
  const own = token("otto");
  const { client, asked } = await declaringAgent("otto", own);
  try {
    const [prompt] = (await client.listPrompts()).prompts;
    // Before: McpError -32021, as for resources/read.
    const before = seen.length;
    const got = await client.getPrompt({ name: prompt!.name });
    expect(asked).toEqual(["url connect-link"]);
    expect(got.messages).toMatchObject([{ content: { text: "hello" } }]);
    expect(seen.slice(before)).toEqual([`prompt Bearer ${own}`]);
  } finally {
    await client.close();
  }
}, 60_000);

test("completion/complete (no input_required there) by a client declaring elicitation.url: an error carrying the consent elicitation, not -32021 naming a capability it declared", async () => {
  const { client, asked } = await declaringAgent("pia", token("pia"));
  try {
    const [prompt] = (await client.listPrompts()).prompts;
    const refusal = await client.complete({ ref: { type: "ref/prompt", name: prompt!.name }, argument: { name: "who", value: "a" } }).then(
      () => undefined,
      (error: { code: number; data?: Record<string, any> }) => error,
    );
    // Before: -32021, data.requiredCapabilities: { elicitation: { url: {} } }.
    expect(refusal?.code).toBe(-31042);
    expect(refusal?.data).toMatchObject({ code: "upstream_authorization_required", upstream: "docs", elicitations: [{ mode: "url", url: expect.stringContaining("/oauth/connect/") }] });
    expect(refusal?.data?.requiredCapabilities).toBeUndefined();
    expect(asked).toEqual([]);
  } finally {
    await client.close();
  }
}, 60_000);

// attack (helper-191): the consent answer on prompts/get and resources/read is built at the gateway
// before anything goes upstream. A hostile agent must not steer it (its retry's forged inputResponses
// and requestState go nowhere), must not get another consumer's link, and asking in a loop must not
// mint a flow per request. The upstream hears nothing of any of it.
test("attack: a forged consent retry reaches no upstream; each consumer gets its own link from the gateway, the same one however often it asks", async () => {
  const declares = { elicitation: { url: {} } };
  const listed = await modernRequest(stack.mcpUrl("vs"), keys.quin, "resources/list", {}, declares);
  const prompts = await modernRequest(stack.mcpUrl("vs"), keys.quin, "prompts/list", {}, declares);
  const uri = listed.result?.resources[0].uri as string;
  const name = prompts.result?.prompts[0].name as string;
  const before = seen.length;
  // Forged: an "accepted" answer to the consent request, with the upstream's own URL offered as where to connect.
  const forged = { inputResponses: { "connect-docs": { action: "accept", content: { url: upstream.url } } } };
  const ask = (consumer: string, method: string, params: Record<string, unknown>) => modernRequest(stack.mcpUrl("vs"), keys[consumer], method, params, declares);
  const linkOf = (answer: Awaited<ReturnType<typeof ask>>) => {
    const requests = answer.result?.inputRequests as Record<string, { params: { url: string } }> | undefined;
    expect(answer.result?.resultType, JSON.stringify(answer)).toBe("input_required");
    expect(Object.keys(requests ?? {})).toEqual(["connect-docs"]);
    return requests!["connect-docs"]!.params.url;
  };
  const quin: string[] = [];
  for (let i = 0; i < 10; i++) {
    quin.push(linkOf(await ask("quin", "resources/read", { uri, ...forged })));
    quin.push(linkOf(await ask("quin", "prompts/get", { name, ...forged })));
  }
  const rex = linkOf(await ask("rex", "resources/read", { uri, ...forged }));
  // A requestState of the agent's making (the consent answer carries none) is refused outright.
  const stated = await ask("quin", "prompts/get", { name, ...forged, requestState: "eyJmb3JnZWQiOnRydWV9" });
  console.log(`quin: ${new Set(quin).size} distinct link(s) in 20 answers; rex's differs: ${!quin.includes(rex)}; a forged requestState → ${JSON.stringify(stated.error)}; upstream heard ${seen.length - before}`);
  expect(stated.error).toMatchObject({ code: -32602, data: { reason: "invalid_request_state" } });
  expect(new Set(quin).size).toBe(1);
  expect(quin[0]).toMatch(/^http:\/\/127\.0\.0\.1:1\/oauth\/connect\/[A-Za-z0-9_-]{43}$/);
  expect(rex).toMatch(/^http:\/\/127\.0\.0\.1:1\/oauth\/connect\//);
  expect(rex).not.toBe(quin[0]);
  expect(seen.length).toBe(before);
}, 60_000);
