import type { NatsConnection } from "@manifold/bus";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { createLogger } from "@manifold/telemetry";
import { everythingStdio } from "../helpers/upstreams.js";

/**
 * A 2025 session's server-to-client request (elicitation/create, sampling/createMessage,
 * roots/list) goes out from the replica running the call, on the call's stream; the agent's answer
 * is a new POST, which a load balancer without stickiness sends to any replica. Before, a replica
 * other than the asking one adopted the session, its own SDK server answered 202 and dropped the
 * answer ("unknown message ID"): the asking replica waited out the call's time limit and the
 * upstream heard a refusal.
 */
const CALL_TIMEOUT_MS = 6_000;
const ENV = { CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS) };
const ALL = { elicitation: {}, sampling: {}, roots: {} };

type Result = { content?: { type: string; text?: string }[]; isError?: boolean };
const textOf = (result: unknown) => ((result as Result).content ?? []).map((c) => c.text ?? "").join("\n");
/** Whether a POST body is a JSON-RPC response (the agent's answer to a server-to-client request). */
const isAnswer = (body: unknown) => {
  if (typeof body !== "string") return false;
  const message = JSON.parse(body) as { method?: unknown; result?: unknown; error?: unknown };
  return message.method === undefined && (message.result !== undefined || message.error !== undefined);
};

describe("a 2025 agent's answer reaches the gateway replica that asked", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let second: Gateway;
  let asking: string;
  let answering: string;
  let names: Record<string, string>;

  /**
   * A 1.32.2 client (2025-11-25) whose session and streams are on the stack's replica; `answersTo`
   * picks the replica each of its answers is POSTed to. `onElicit` replaces its elicitation handler.
   */
  async function agent(answersTo: () => string, onElicit?: (requestId: string | number) => Promise<{ action: "accept" | "decline" }>): Promise<Client & { sessionId: string }> {
    const client = new Client({ name: "legacy-agent", version: "1.0.0" }, { capabilities: ALL });
    client.setRequestHandler(ElicitRequestSchema, async (_request, extra) => (onElicit ? onElicit(extra.requestId) : { action: "accept", content: { name: "Ada" } }));
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({ role: "assistant", content: { type: "text", text: "sampled by the agent" }, model: "test-model", stopReason: "endTurn" }));
    client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///agent/root", name: "agent root" }] }));
    const route = (url: string | URL, init?: RequestInit) => {
      const target = new URL(url);
      if (init?.method === "POST" && isAnswer(init.body)) target.port = new URL(answersTo()).port;
      return fetch(target, init);
    };
    const transport = new StreamableHTTPClientTransport(new URL(`${asking}/mcp/open`), { fetch: route });
    await client.connect(transport);
    return Object.assign(client, { sessionId: transport.sessionId! });
  }

  /** What the stack's replica counts of the answers it dropped, by reason. */
  const dropped = async (gateway: Gateway) => {
    const text = (await gateway.metricsApp.inject({ url: "/metrics" })).body;
    return Object.fromEntries([...text.matchAll(/^manifold_gateway_answers_dropped_total\{reason="([a-z]+)"[^}]*\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, ENV), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } }, { name: "stdio", transport: everythingStdio() });
    const tools = [
      ...["ask-then-wait", "ask-twice"].map((tool) => ({ upstream: "rec", tool })),
      ...["trigger-sampling-request", "get-roots-list", "echo"].map((tool) => ({ upstream: "stdio", tool })),
    ];
    names = await createVirtualServer(stack, "open", tools, { interactions: { elicitation: true, sampling: true, roots: true } });
    // A second replica, as the load balancer's other target.
    const nc: NatsConnection = await connectAs(nats, "gateway", "gateway-2");
    const env = { ...busEnv(nats, "gateway"), LOG_LEVEL: "silent", GATEWAY_AUTH: "off", ...ENV };
    second = await buildGateway({ config: loadGatewayConfig(env), logger: createLogger({ component: "gateway-2", level: "silent" }), nc, env });
    await second.follower.caughtUp;
    await second.app.listen({ port: 0, host: "127.0.0.1" });
    await second.metricsApp.listen({ port: 0, host: "127.0.0.1" });
    asking = stack.gatewayUrl;
    answering = `http://127.0.0.1:${(second.app.server.address() as AddressInfo).port}`;
    // The stdio upstream's first call starts its process (1-3 s here): not what the suite times.
    const warm = await agent(() => asking);
    await warm.callTool({ name: names["stdio/echo"]!, arguments: { message: "warm" } });
    await warm.close();
  }, 60_000);

  afterAll(async () => {
    await second?.close();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  /** The call answers `expected` well within its time limit (before, it waited the whole of it). */
  const answeredQuickly = async (client: Client, tool: string, args: Record<string, unknown>, expected: string) => {
    const started = Date.now();
    expect(textOf(await client.callTool({ name: names[tool]!, arguments: args }))).toContain(expected);
    const ms = Date.now() - started;
    expect(ms, `${tool} took ${ms} ms`).toBeLessThan(CALL_TIMEOUT_MS / 2);
  };

  test("answers POSTed to the other replica reach the call: elicitation (twice at once), sampling, roots", async () => {
    const client = await agent(() => answering);
    try {
      await answeredQuickly(client, "rec/ask-twice", {}, "answered: accept, accept");
      await answeredQuickly(client, "rec/ask-then-wait", { ms: 0, tag: "elsewhere" }, "waited 0 ms");
      expect(recording.calls.find((c) => (c.arguments as { tag?: string }).tag === "elsewhere")?.arguments).toMatchObject({ answer: "accept" });
      await answeredQuickly(client, "stdio/get-roots-list", {}, "file:///agent/root");
      await answeredQuickly(client, "stdio/trigger-sampling-request", { prompt: "hi", maxTokens: 10 }, "sampled by the agent");
    } finally {
      await client.close();
    }
  });

  test("answers POSTed to the replica that asked reach the call as before", async () => {
    const client = await agent(() => asking);
    try {
      await answeredQuickly(client, "rec/ask-twice", {}, "answered: accept, accept");
      await answeredQuickly(client, "stdio/trigger-sampling-request", { prompt: "hi", maxTokens: 10 }, "sampled by the agent");
    } finally {
      await client.close();
    }
  });

  test("attack: an agent cannot answer another session's question, on either replica; forged answers are dropped and counted", async () => {
    let asked: (id: string | number) => void;
    const question = new Promise<string | number>((resolve) => (asked = resolve));
    let release: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    // The victim's agent holds its answer back until the attacker has tried.
    const victim = await agent(
      () => answering,
      async (id) => {
        asked(id);
        await released;
        return { action: "accept" };
      },
    );
    const attacker = await agent(() => answering);
    try {
      const before = { asking: await dropped(stack.gateway), answering: await dropped(second) };
      const call = victim.callTool({ name: names["rec/ask-then-wait"]!, arguments: { ms: 0, tag: "victim" } });
      call.catch(() => undefined);
      const id = await question;
      const forge = (base: string, forged: string | number) =>
        fetch(`${base}/mcp/open`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": attacker.sessionId, "mcp-protocol-version": "2025-11-25" },
          body: JSON.stringify({ jsonrpc: "2.0", id: forged, result: { action: "decline" } }),
        });
      // The victim's own request id, on the replica that asked and on the other; an id naming no replica.
      for (const response of [await forge(asking, id), await forge(answering, id), await forge(answering, "no.such.replica.>"), await forge(answering, 0)]) {
        expect(response.status).toBe(202);
      }
      // All four are dropped, each counted once where it was found to answer nothing.
      await eventually(async () => {
        const asking2 = await dropped(stack.gateway);
        const answering2 = await dropped(second);
        const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
        return total(asking2) - total(before.asking) + total(answering2) - total(before.answering) === 4 ? true : undefined;
      });
      release!();
      expect(textOf(await call)).toBe("waited 0 ms");
      // The upstream heard the victim's own answer, not the forged decline.
      expect(recording.calls.find((c) => (c.arguments as { tag?: string }).tag === "victim")?.arguments).toMatchObject({ answer: "accept" });
    } finally {
      release!();
      await Promise.all([victim.close(), attacker.close()]);
    }
  });
});
