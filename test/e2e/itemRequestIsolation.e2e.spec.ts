import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  ElicitRequestSchema,
  ElicitResultSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListToolsRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { TEST_STDIO_COMMANDS } from "../helpers/upstreams.js";

/** An agent that answers every question with `answer`, noting what it was asked and logged. */
async function agent(url: string, key: string, answer: string) {
  const asked: string[] = [];
  const logged: string[] = [];
  const client = new Client({ name: "agent", version: "1.0.0" }, { capabilities: { elicitation: {} } });
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push(JSON.stringify(request.params));
    return { action: "accept", content: { name: answer } };
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logged.push(JSON.stringify(n.params)));
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  return { client, asked, logged };
}
const outcome = (promise: Promise<unknown>) => promise.then((r) => JSON.stringify(r), (error: Error) => `error: ${error.message}`);

// attack (tasks and subscriptions review, helper-102): one stdio session serves every caller's prompts and reads
// beside their calls, and an item request did not count as running on it. So while alice's call ran, the question
// the upstream asked during mallory's prompts/get (2026-07-28: its input_required round; 2025: elicitation) was
// put to alice, and alice's answer ("ALICE-SECRET") came back in mallory's prompt; with alice's log level set,
// the upstream's log lines for mallory's prompt (quoting its arguments) reached alice's call.
describe.each([
  ["2026-07-28", "askingItemsModern.mjs"],
  ["2025", "askingItemsLegacy.mjs"],
])("a %s stdio upstream: one caller's prompt or read asks and logs to nobody else", (_era, fixture) => {
  const script = new URL(`../fixtures/${fixture}`, import.meta.url).pathname;
  let nats: NatsServer;
  let stack: Stack;
  let slow = "";
  let keys: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    const commands = JSON.stringify([...JSON.parse(TEST_STDIO_COMMANDS), [process.execPath, script]]);
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", MANIFOLD_STDIO_COMMANDS: commands });
    await registerUpstreams(stack, { name: "pm", transport: { type: "stdio", command: process.execPath, args: [script], env: {} } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "vs", tools: [{ upstream: "pm", tool: "slow" }], prompts: [{ upstream: "pm", prompt: "greet" }], resources: [{ upstream: "pm", uri: "probe://doc" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    slow = created.body.tools[0].exposedName;
    keys = await grantedConsumers(stack, "vs", ["alice", "mallory"]);
  });
  afterAll(async () => {
    await stack?.close();
    await nats?.stop();
  });

  test("while alice's call runs, mallory's prompts/get and resources/read reach neither alice's agent nor her logs", async () => {
    const alice = await agent(stack.mcpUrl("vs"), keys.alice!, "ALICE-SECRET");
    const mallory = await agent(stack.mcpUrl("vs"), keys.mallory!, "mallory");
    await alice.client.setLoggingLevel("debug").catch(() => undefined);
    const [prompt] = (await mallory.client.listPrompts()).prompts;
    const [resource] = (await mallory.client.listResources()).resources;
    for (const ask of [
      () => mallory.client.getPrompt({ name: prompt!.name, arguments: { note: "mallory-secret-note" } }),
      () => mallory.client.readResource({ uri: resource!.uri }),
    ]) {
      const running = outcome(alice.client.callTool({ name: slow, arguments: { ms: 2_500 } }));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await outcome(ask())).not.toContain("ALICE-SECRET");
      expect(await running).toContain("slow done");
    }
    expect(alice.asked).toEqual([]);
    expect(alice.logged.join("\n")).not.toMatch(/B-PRIVATE|mallory-secret-note/);
    await Promise.all([alice.client.close(), mallory.client.close()]);
  });
});

// probe (HTTP transports review, helper-105): the tests above, over a 2025 Streamable HTTP upstream's
// shared session. alice's call goes through the direct caller; mallory's prompts/get through the SDK client on
// the same session, whose POST stream carries the upstream's question and log line. Neither may reach alice.
function build(): Server {
  const server = new Server({ name: "asking-items-http", version: "1.0.0" }, { capabilities: { tools: {}, prompts: {}, logging: {} } });
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools: [{ name: "slow", description: "waits", inputSchema: { type: "object", properties: { ms: { type: "integer" } } } }] }));
  server.setRequestHandler(CallToolRequestSchema, async (req) => {
    await new Promise((r) => setTimeout(r, Number(req.params.arguments?.ms ?? 4000)));
    return { content: [{ type: "text", text: "slow done" }] };
  });
  server.setRequestHandler(ListPromptsRequestSchema, async () => ({ prompts: [{ name: "greet", description: "asks", arguments: [{ name: "note", required: false }] }] }));
  server.setRequestHandler(GetPromptRequestSchema, async (req, extra) => {
    await extra.sendNotification({ method: "notifications/message", params: { level: "error", data: `B-PRIVATE-LOG note=${req.params.arguments?.note}` } }).catch(() => {});
    const question = { method: "elicitation/create" as const, params: { message: "HTTP-PROBE-QUESTION", requestedSchema: { type: "object" as const, properties: { name: { type: "string" as const } }, required: ["name"] } } };
    const answer = await extra.sendRequest(question, ElicitResultSchema).then((r) => JSON.stringify(r), (e: Error) => `refused: ${e.message}`);
    return { messages: [{ role: "user", content: { type: "text", text: `PROMPT GOT: ${answer}` } }] };
  });
  return server;
}

describe("a 2025 Streamable HTTP upstream's shared session: one caller's prompt asks and logs to nobody else", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: SessionServer<Server>;
  let slow = "";
  let keys: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), serveSessions(build)]);
    await registerUpstreams(stack, { name: "pm", transport: { type: "streamable-http", url: upstream.url } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "vs", tools: [{ upstream: "pm", tool: "slow" }], prompts: [{ upstream: "pm", prompt: "greet" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    slow = created.body.tools[0].exposedName;
    keys = await grantedConsumers(stack, "vs", ["alice", "mallory"]);
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("while alice's direct call runs, the question and log line of mallory's prompts/get reach neither alice's agent nor her logs", async () => {
    const alice = await agent(stack.mcpUrl("vs"), keys.alice!, "ALICE-SECRET");
    const mallory = await agent(stack.mcpUrl("vs"), keys.mallory!, "mallory");
    await alice.client.setLoggingLevel("debug").catch(() => undefined);
    const [prompt] = (await mallory.client.listPrompts()).prompts;
    const running = outcome(alice.client.callTool({ name: slow, arguments: { ms: 2_500 } }));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const got = await outcome(mallory.client.getPrompt({ name: prompt!.name, arguments: { note: "mallory-secret-note" } }));
    // The question was asked, and refused: nobody's answer came back in the prompt.
    expect(got).toContain("PROMPT GOT: refused");
    expect(got).not.toContain("ALICE-SECRET");
    expect(await running).toContain("slow done");
    expect(alice.asked).toEqual([]);
    expect(alice.logged.join("\n")).not.toMatch(/B-PRIVATE|mallory-secret-note/);
    await Promise.all([alice.client.close(), mallory.client.close()]);
  });
});
