import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

const FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;

// A stdio upstream has one session, shared by every caller whose calls carry the same credentials:
// its log messages and its requests to the client do not say which call they belong to. Manifold
// must never hand one caller what another caller's call caused (a log line, a question), nor feed
// one caller's answer to another caller's call.

type Result = { content?: { type: string; text?: string }[]; isError?: boolean };
const textOf = (result: unknown) => ((result as Result).content ?? []).map((c) => c.text ?? "").join("\n");

interface Agent {
  client: Client;
  logs: unknown[];
  /** Questions this agent was asked (elicitation/create). */
  asked: unknown[];
}

async function agent(url: string, key: string, capabilities: Record<string, unknown> = {}): Promise<Agent> {
  const client = new Client({ name: "agent", version: "1.0.0" }, { capabilities });
  const logs: unknown[] = [];
  const asked: unknown[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
  if (capabilities.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return { action: "accept", content: { name: "answered by another agent" } };
    });
  }
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  return { client, logs, asked };
}

describe("on a stdio session shared by two consumers, nothing the upstream does not attribute crosses from one to the other", () => {
  let nats: NatsServer;
  let stack: Stack;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    for (const consumer of ["alice", "bob"]) {
      expect((await stack.admin.post("/v1/consumers", { name: consumer, groups: [] })).status).toBe(201);
      keys[consumer] = (await stack.admin.post(`/v1/consumers/${consumer}/keys`, {})).body.key as string;
    }
  }, 60_000);

  /** A stdio upstream of its own (a fresh session, also when a test is retried) behind a virtual server both consumers may use. */
  async function sharedServer(): Promise<{ url: string; names: Record<string, string> }> {
    const run = `s${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    await registerUpstreams(stack, { name: run, transport: everythingStdio() });
    const tools = ["toggle-simulated-logging", "trigger-long-running-operation", "trigger-elicitation-request"].map((tool) => ({ upstream: run, tool }));
    const created = await stack.admin.post("/v1/virtual-servers", { name: run, tools, interactions: { elicitation: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    for (const consumer of ["alice", "bob"]) {
      expect((await stack.admin.post(`/v1/virtual-servers/${run}/grants`, { grantId: consumer, subject: { consumer } })).status).toBe(201);
    }
    return { url: stack.mcpUrl(run), names: Object.fromEntries(created.body.tools.map((t: { tool: string; exposedName: string }) => [t.tool, t.exposedName])) };
  }

  afterAll(async () => {
    await stack?.close();
    await nats?.stop();
  });

  test("a log message another consumer's call set going does not reach a call that merely runs alone when it arrives", async () => {
    const { url, names } = await sharedServer();
    const [alice, bob] = await Promise.all([agent(url, keys.alice!), agent(url, keys.bob!)]);
    try {
      // Alice starts the upstream logging every 5 s, outside any call. The first message comes
      // during her call, while every call on the session has been hers: it is hers.
      await alice.client.setLoggingLevel("debug");
      expect(textOf(await alice.client.callTool({ name: names["toggle-simulated-logging"]!, arguments: {} }))).toContain("Started simulated");
      expect(alice.logs).toHaveLength(1);
      await bob.client.setLoggingLevel("debug");
      // Bob's call is the only one running while at least one of those messages is sent.
      const started = Date.now();
      await bob.client.callTool({ name: names["trigger-long-running-operation"]!, arguments: { duration: 6, steps: 3 } }, undefined, { timeout: 20_000 });
      expect(Date.now() - started).toBeGreaterThan(5_000);
      expect(bob.logs).toEqual([]);
    } finally {
      await alice.client.callTool({ name: names["toggle-simulated-logging"]!, arguments: {} }).catch(() => undefined);
      await Promise.all([alice.client.close(), bob.client.close()]);
    }
  }, 30_000);

  // The attack: Alice's call leaves work running that asks a question after her call answered.
  // Bob's call, which may ask his agent, runs alone when it arrives: before, Bob was shown
  // "about alice-secret-42" and his answer went to the upstream as the answer to it.
  test("a question work left running by another consumer's call asks is not put to an agent whose call runs alone", async () => {
    const run = `q${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    await registerUpstreams(stack, { name: run, transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { ASK_LATER: "1" } } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: run, tools: ["ask-later", "wait"].map((tool) => ({ upstream: run, tool })), interactions: { elicitation: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    for (const consumer of ["alice", "bob"]) expect((await stack.admin.post(`/v1/virtual-servers/${run}/grants`, { grantId: consumer, subject: { consumer } })).status).toBe(201);
    const names = Object.fromEntries(created.body.tools.map((t: { tool: string; exposedName: string }) => [t.tool, t.exposedName]));
    const [alice, bob] = await Promise.all([agent(stack.mcpUrl(run), keys.alice!), agent(stack.mcpUrl(run), keys.bob!, { elicitation: { form: {} } })]);
    try {
      expect(textOf(await alice.client.callTool({ name: names["ask-later"]!, arguments: { secret: "alice-secret-42" } }))).toBe("asked later");
      expect(textOf(await bob.client.callTool({ name: names.wait!, arguments: { ms: 1_500 } }))).toBe("waited");
      expect(bob.asked).toEqual([]);
    } finally {
      await Promise.all([alice.client.close(), bob.client.close()]);
    }
  }, 30_000);

  test("a question from another consumer's call is not put to the one agent that may be asked, and its answer reaches no other call", async () => {
    const { url, names } = await sharedServer();
    const [alice, bob] = await Promise.all([agent(url, keys.alice!), agent(url, keys.bob!, { elicitation: { form: {} } })]);
    try {
      // Bob's call may be asked; Alice's may not (her agent declared nothing).
      const bobs = bob.client.callTool({ name: names["trigger-long-running-operation"]!, arguments: { duration: 3, steps: 3 } }, undefined, { timeout: 20_000 });
      await new Promise((r) => setTimeout(r, 500));
      const alices = await alice.client.callTool({ name: names["trigger-elicitation-request"]!, arguments: {} }).then(
        (result) => textOf(result),
        (error: Error) => error.message,
      );
      await bobs;
      expect(bob.asked).toEqual([]);
      expect(alices).not.toContain("answered by another agent");
      expect(alices).toContain("request refused: several calls are running and the request does not say whose it is");
    } finally {
      await Promise.all([alice.client.close(), bob.client.close()]);
    }
  }, 30_000);
});
