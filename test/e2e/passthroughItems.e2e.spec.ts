import type { NatsServer } from "@manifold/nats-server";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import type { IncomingHttpHeaders } from "node:http";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { legacyAgent, modernAgent, type Agent } from "../helpers/eraAgents.js";
import { initializeWith } from "../helpers/mcp.js";
import { recordSpans } from "../helpers/spans.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const HEADER = "X-Manifold-Upstream-Headers";
const SERVICE_TOKEN = `svc-token-${randomBytes(12).toString("hex")}`;
const ALICE_TOKEN = `alice-token-${randomBytes(12).toString("hex")}`;

/**
 * An upstream without per-user `auth` that takes each caller's own credential by pass-through
 * (README "Per-user tokens") and has a service credential of its own (`secretHeaders`) for
 * discovery. A caller's tools/call went upstream with the caller's `Authorization`; its
 * resources/read, prompts/get and completion/complete went on the shared session, with the
 * service credential: a caller whose own token would be refused read as the service account.
 * The upstream reports which credential each request carried, by role, so that the connector's
 * echo cleaning does not hide it.
 */
let nats: NatsServer;
let stack: Stack;
let upstream: SessionServer<Server>;
const spans = recordSpans();
const logs: string[] = [];

const roleOf = (headers: IncomingHttpHeaders | undefined) =>
  String(headers?.authorization ?? "none")
    .replaceAll(SERVICE_TOKEN, "SERVICE")
    .replaceAll(ALICE_TOKEN, "ALICE");

function buildUpstream(): Server {
  const server = new Server({ name: "plain", version: "1.0.0" }, { capabilities: { tools: {}, resources: {}, prompts: {}, completions: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: "whoami", inputSchema: { type: "object" } }] }));
  server.setRequestHandler(ListResourcesRequestSchema, async () => ({ resources: [{ uri: "me://profile", name: "profile" }, { uri: "me://echo", name: "echo" }] }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({ resourceTemplates: [] }));
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: [{ name: "brief", arguments: [{ name: "topic" }] }, { name: "broken" }] }));
  server.setRequestHandler(ReadResourceRequestSchema, async (request, extra) => {
    const headers = extra.requestInfo?.headers;
    // `me://echo` hands the credential back as it came: the caller must not get it.
    const text = request.params.uri === "me://echo" ? `seen ${String(headers?.authorization)}` : `read as ${roleOf(headers)}`;
    return { contents: [{ uri: request.params.uri, text }] };
  });
  server.setRequestHandler(GetPromptRequestSchema, async (request, extra) => {
    // A debug build's error quoting the request's credential.
    if (request.params.name === "broken") throw new McpError(-32000, `failed for ${String(extra.requestInfo?.headers?.authorization)}`);
    return { messages: [{ role: "user", content: { type: "text", text: `prompt as ${roleOf(extra.requestInfo?.headers)}` } }] };
  });
  server.setRequestHandler(CompleteRequestSchema, async (_request, extra) => ({ completion: { values: [`completed as ${roleOf(extra.requestInfo?.headers)}`] } }));
  return server;
}

beforeAll(async () => {
  spans.register();
  nats = await startNats();
  upstream = await serveSessions(buildUpstream);
  stack = await startStack(nats.url, {}, { secretsEnv: { MANIFOLD_SECRET_SERVICE_TOKEN: `Bearer ${SERVICE_TOKEN}` }, logs });
  await registerUpstreams(
    stack,
    {
      name: "plain",
      transport: { type: "streamable-http", url: upstream.url, secretHeaders: { Authorization: "env:MANIFOLD_SECRET_SERVICE_TOKEN" } },
      options: { passthroughHeaders: ["Authorization"] },
    },
    // Registered, in no virtual server here: naming it must be refused as a name that does not exist is.
    { name: "elsewhere", transport: { type: "streamable-http", url: upstream.url } },
  );
  // "items" serves only the upstream's resources and prompts (no tool routes to it); "both" its tool too.
  for (const [name, tools] of [
    ["items", []],
    ["both", [{ upstream: "plain", tool: "whoami" }]],
  ] as const) {
    const created = await stack.admin.post("/v1/virtual-servers", {
      name,
      tools,
      resources: ["me://profile", "me://echo"].map((uri) => ({ upstream: "plain", uri })),
      prompts: ["brief", "broken"].map((prompt) => ({ upstream: "plain", prompt })),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  }
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await spans[Symbol.asyncDispose]();
});

const passing = (token: string) => ({ [HEADER]: JSON.stringify({ plain: { Authorization: `Bearer ${token}` } }) });

describe.each([
  ["2025-11-25", "items", legacyAgent],
  ["2026-07-28", "items", modernAgent],
  ["2025-11-25", "both", legacyAgent],
  ["2026-07-28", "both", modernAgent],
] as const)("a pass-through upstream's items, %s, virtual server '%s'", (_era, virtualServer, connect) => {
  let agent: Agent;
  beforeAll(async () => {
    agent = await connect(stack.mcpUrl(virtualServer), "unused", passing(ALICE_TOKEN));
  });
  afterAll(() => agent?.close());

  test("attack: a read, a prompt and a completion carry the caller's credential, never the service's", async () => {
    const [profile] = (await agent.listResources()).filter((r) => r.uri.endsWith("me://profile"));
    const brief = (await agent.listPrompts()).find((p) => p.name.startsWith("brief"))!;
    // Before: on "both", "read as Bearer SERVICE", "prompt as Bearer SERVICE", "completed as Bearer SERVICE";
    // on "items", the agent's headers were refused at the edge (-32602, no tool routes to 'plain').
    const read = await agent.readResource(profile!.uri);
    expect(read.contents[0].text).toBe("read as Bearer ALICE");
    const prompt = await agent.getPrompt(brief.name, { topic: "x" });
    expect(prompt.messages[0].content.text).toBe("prompt as Bearer ALICE");
    const completion = await agent.complete({ ref: { type: "ref/prompt", name: brief.name }, argument: { name: "topic", value: "x" } });
    expect(completion.completion.values).toEqual(["completed as Bearer ALICE"]);
  });

  test("the caller's credential echoed back in a result or an error is withheld", async () => {
    const echo = (await agent.listResources()).find((r) => r.uri.endsWith("me://echo"))!;
    const read = await agent.readResource(echo.uri);
    expect(read.contents[0].text).toMatch(/^seen /);
    expect(JSON.stringify(read)).not.toContain(ALICE_TOKEN);
    const broken = (await agent.listPrompts()).find((p) => p.name.startsWith("broken"))!;
    const refused = await agent.getPrompt(broken.name, {}).then(
      () => undefined,
      (error: unknown) => JSON.stringify({ message: (error as Error).message, data: (error as { data?: unknown }).data }),
    );
    expect(refused).toBeDefined();
    expect(refused).not.toContain(ALICE_TOKEN);
  });
});

test("the credential is in no log line and no span", () => {
  expect(logs.join("\n")).not.toContain(ALICE_TOKEN);
  const { names, searched } = spans.holding([ALICE_TOKEN]);
  expect(searched).toBeGreaterThan(0);
  expect(names).toEqual([]);
});

test("an upstream the virtual server does not serve the caller is refused alike, whether it exists or not", async () => {
  const answerFor = async (name: string) => {
    const { status, body } = await initializeWith(stack.mcpUrl("items"), "unused", undefined, { [HEADER]: JSON.stringify({ [name]: { Authorization: "Bearer x" } }) });
    return { status, body: body.replaceAll(name, "NAME") };
  };
  const existing = await answerFor("elsewhere");
  expect(existing.status).toBe(400);
  expect(existing).toEqual(await answerFor("nowhere"));
});

test("a caller whose grant denies every item of the upstream is refused its headers as if the upstream did not exist", async () => {
  await using bus = await startNats();
  await using guarded = await startStack(bus.url, { GATEWAY_AUTH: "required" });
  await registerUpstreams(guarded, { name: "plain", transport: { type: "streamable-http", url: upstream.url }, options: { passthroughHeaders: ["Authorization"] } });
  const created = await guarded.admin.post("/v1/virtual-servers", { name: "items", resources: [{ upstream: "plain", uri: "me://profile" }], prompts: [{ upstream: "plain", prompt: "brief" }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const keys: Record<string, string> = {};
  for (const name of ["denied", "free"]) {
    await guarded.admin.post("/v1/consumers", { name });
    keys[name] = (await guarded.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
  }
  const grant = (name: string, denied: Record<string, unknown>) => guarded.admin.post("/v1/virtual-servers/items/grants", { grantId: name, subject: { consumer: name }, ...denied });
  expect((await grant("free", {})).status).toBe(201);
  expect((await grant("denied", { deniedPrompts: [{ upstream: "plain", prompt: "brief" }], deniedResources: [{ upstream: "plain", uri: "me://profile" }] })).status).toBe(201);
  const answerFor = async (consumer: string, name: string) => {
    const { status, body } = await initializeWith(guarded.mcpUrl("items"), keys[consumer]!, undefined, { [HEADER]: JSON.stringify({ [name]: { Authorization: "Bearer x" } }) });
    return { status, body: body.replaceAll(name, "NAME") };
  };
  expect((await answerFor("free", "plain")).status).toBe(200);
  const refused = await answerFor("denied", "plain");
  expect(refused.status).toBe(400);
  expect(refused).toEqual(await answerFor("denied", "nowhere"));
});
