import { MAX_SESSION_SUBSCRIPTIONS } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient, eventually, type DisposableClient } from "../helpers/mcp.js";
import { spawnGateways } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

// Issue 14: what a 2025 session sets after initialize (logging/setLevel, resources/subscribe and
// unsubscribe) holds on every gateway replica, whichever one a request or the notification stream
// reaches: three replicas (two gateway processes and the stack's own), real server-everything
// (subscribable resources, simulated updates) and the 2.x fixture (one log message per level).

/** Where a routed agent's next HTTP request goes: by HTTP method and JSON-RPC method. */
type Route = (request: { http: string; rpc: string | undefined }) => number | Promise<number>;
interface RoutedAgent {
  client: DisposableClient;
  /** `notifications/resources/updated` URIs, in arrival order. */
  updates: string[];
  logs: { level: string; data: unknown }[];
  /** The replica (port) whose GET notification stream is open, once it is. */
  stream(): number | undefined;
}

/** How often a replica rewrites a session's record to keep it alive, in the suite below. */
const TOUCH_MS = 2_000;

describe("a 2025 session's log level and resource subscriptions hold on every replica", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let gateways: Awaited<ReturnType<typeof spawnGateways>> | undefined;
  /** Three replicas: two gateway processes and the stack's own gateway. */
  let A: number, B: number, C: number;
  let aliceKey: string;
  let bobKey: string;
  let tools: Record<string, string>;
  const STATIC = "pipe+demo://resource/static/document/features.md";
  const text = (n: number) => `pipe+demo://resource/dynamic/text/${n}`;

  /** A real 1.32.2 client of `virtualServer` whose every HTTP request goes to the replica `route` names. */
  const routedAgent = async (key: string, virtualServer: string, route: Route): Promise<RoutedAgent> => {
    let stream: number | undefined;
    const routed = async (url: string | URL, init?: RequestInit) => {
      const http = init?.method ?? "GET";
      const rpc = typeof init?.body === "string" ? (JSON.parse(init.body) as { method?: string }).method : undefined;
      const port = await route({ http, rpc });
      const target = new URL(url);
      target.port = String(port);
      const response = await fetch(target, init);
      if (http === "GET" && response.ok) stream = port;
      return response;
    };
    const url = new URL(stack.mcpUrl(virtualServer));
    const client = await connectClient(new StreamableHTTPClientTransport(url, { fetch: routed, requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    const agent: RoutedAgent = { client, updates: [], logs: [], stream: () => stream };
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void agent.updates.push(n.params.uri));
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void agent.logs.push({ level: n.params.level, data: n.params.data }));
    return agent;
  };
  /** server-everything's updates of subscribed URIs: one round at once when turned on, then every 5 s (one switch for the connector's upstream session). */
  const updatesTurned = async (agent: RoutedAgent, state: "Started" | "Stopped") => {
    for (let i = 0; i < 2; i++) {
      const { content } = (await agent.client.callTool({ name: tools["pipe/toggle-subscriber-updates"]!, arguments: {} })) as { content: { text: string }[] };
      if (content[0]!.text.startsWith(state)) return;
    }
    throw new Error(`server-everything's updates could not be ${state.toLowerCase()}`);
  };
  const count = (list: string[], uri: string) => list.filter((u) => u === uri).length;

  beforeAll(async () => {
    nats = await startNats();
    // Long enough that a replica holding only the notification stream keeps its copy through a
    // test; short enough that a replica touches the record (every quarter of it) within one.
    const env = { GATEWAY_AUTH: "required", SESSION_IDLE_MS: String(TOUCH_MS * 4) };
    [stack, modern] = await Promise.all([startStack(nats.url, env), serveModernHttp()]);
    gateways = await spawnGateways(nats, env);
    [A, B] = gateways.ports as [number, number];
    C = Number(new URL(stack.gatewayUrl).port);

    await registerUpstreams(stack, { name: "pipe", transport: everythingStdio() }, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    const library = await stack.admin.post("/v1/virtual-servers", {
      name: "library",
      tools: [
        { upstream: "pipe", tool: "toggle-subscriber-updates" },
        { upstream: "modern", tool: "logs" },
      ],
      resources: [{ upstream: "pipe", uri: "demo://resource/static/document/features.md" }, { upstream: "pipe", uriTemplate: "demo://resource/dynamic/text/{resourceId}" }],
    });
    expect(library.status, JSON.stringify(library.body)).toBe(201);
    tools = Object.fromEntries(library.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
    // Bob's virtual server exposes the same upstream's static document, not its dynamic texts.
    const other = await stack.admin.post("/v1/virtual-servers", { name: "other", resources: [{ upstream: "pipe", uri: "demo://resource/static/document/features.md" }] });
    expect(other.status, JSON.stringify(other.body)).toBe(201);
    for (const [name, vs] of [["alice", "library"], ["bob", "other"]] as const) {
      await stack.admin.post("/v1/consumers", { name });
      await stack.admin.post(`/v1/virtual-servers/${vs}/grants`, { grantId: name, subject: { consumer: name } });
    }
    aliceKey = (await stack.admin.post("/v1/consumers/alice/keys", {})).body.key;
    bobKey = (await stack.admin.post("/v1/consumers/bob/keys", {})).body.key;
  }, 90_000);

  afterAll(async () => {
    await gateways?.stop();
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  test("logging/setLevel through one replica: the replica already holding the session and one adopting it later relay the calls' log messages at that level", async () => {
    let callsTo = A;
    const agent = await routedAgent(aliceKey, "library", ({ rpc }) => (rpc === "tools/call" ? callsTo : A));
    try {
      const logs = tools["modern/logs"]!;
      // B adopts the session before any level is set: its call gets no log messages.
      callsTo = B;
      await agent.client.callTool({ name: logs, arguments: {} });
      expect(agent.logs).toEqual([]);

      await agent.client.setLoggingLevel("warning");
      const atWarning = [
        { level: "warning", data: "warning from the fixture" },
        { level: "error", data: "error from the fixture" },
      ];
      // B heard of the change; the call right after setLevel's answer already carries the level.
      await agent.client.callTool({ name: logs, arguments: {} });
      expect(agent.logs).toEqual(atWarning);
      // C never held the session: it adopts it with the level from the session's record.
      callsTo = C;
      await agent.client.callTool({ name: logs, arguments: {} });
      expect(agent.logs).toEqual([...atWarning, ...atWarning]);

      // A new level through C reaches A and B.
      await agent.client.setLoggingLevel("error");
      for (const port of [A, B]) {
        callsTo = port;
        agent.logs.length = 0;
        await agent.client.callTool({ name: logs, arguments: {} });
        expect(agent.logs, `replica ${port === A ? "A" : "B"}`).toEqual([{ level: "error", data: "error from the fixture" }]);
      }
    } finally {
      await agent.client.close();
    }
  });

  test("a replica's touch keeps the record's holders and state: a level set through a replica that adopted the session later reaches the one that created it", async () => {
    let postsTo = A;
    const agent = await routedAgent(aliceKey, "library", ({ http }) => (http === "POST" ? postsTo : A));
    try {
      const logs = tools["modern/logs"]!;
      // The session lives on A only, past a touch (which writes A's copy of the record back).
      await new Promise((r) => setTimeout(r, TOUCH_MS + 200));
      await agent.client.listTools();
      await new Promise((r) => setTimeout(r, 200));
      // B adopts it and sets a level: A hears of it only if its touch kept A among the holders.
      postsTo = B;
      await agent.client.callTool({ name: logs, arguments: {} });
      await agent.client.setLoggingLevel("error");
      postsTo = A;
      await agent.client.callTool({ name: logs, arguments: {} });
      expect(agent.logs).toEqual([{ level: "error", data: "error from the fixture" }]);
    } finally {
      await agent.client.close();
    }
  });

  test("resources/subscribe through one replica reaches the session's stream on another (adopted before and after), and resources/unsubscribe through a third stops it", async () => {
    let openStream!: () => void;
    const streamGate = new Promise<void>((resolve) => (openStream = resolve));
    let requestsTo = A;
    // The notification stream waits, then opens on B: B has not seen the session before.
    const agent = await routedAgent(aliceKey, "library", async ({ http }) => (http === "GET" ? (await streamGate, B) : requestsTo));
    try {
      await agent.client.subscribeResource({ uri: text(1) });
      openStream();
      await eventually(() => (agent.stream() === B ? true : undefined));
      // B holds the session now; a subscription through C reaches it by the change notice.
      requestsTo = C;
      await agent.client.subscribeResource({ uri: text(2) });

      requestsTo = A;
      await updatesTurned(agent, "Started");
      await eventually(() => (count(agent.updates, text(1)) > 0 && count(agent.updates, text(2)) > 0 ? true : undefined), 8_000);

      requestsTo = C;
      await agent.client.unsubscribeResource({ uri: text(1) });
      const [ones, twos] = [count(agent.updates, text(1)), count(agent.updates, text(2))];
      requestsTo = A;
      await updatesTurned(agent, "Stopped");
      await updatesTurned(agent, "Started");
      // The upstream still sends text/1 (the connector's subscription stays) before text/2, on one subject: had it been relayed, it would be here first.
      await eventually(() => (count(agent.updates, text(2)) > twos ? true : undefined), 8_000);
      expect(count(agent.updates, text(1))).toBe(ones);
      expect(agent.stream()).toBe(B);
    } finally {
      await updatesTurned(agent, "Stopped").catch(() => undefined);
      await agent.client.close();
    }
  });

  test(`a session holds at most ${MAX_SESSION_SUBSCRIPTIONS} subscriptions across replicas: one more is refused with too_many_subscriptions, an unsubscribe makes room`, async () => {
    let next = 0;
    const replicas = [A, B, C];
    const agent = await routedAgent(aliceKey, "library", () => replicas[next++ % replicas.length]!);
    try {
      for (let i = 0; i < MAX_SESSION_SUBSCRIPTIONS; i++) await agent.client.subscribeResource({ uri: text(1_000 + i) });
      // Subscribing again to one it holds is no new subscription.
      await agent.client.subscribeResource({ uri: text(1_000) });
      for (let i = 0; i < replicas.length; i++) {
        const error = await rpcError(agent.client.subscribeResource({ uri: text(5_000) }));
        expect(error.code).toBe(-32602);
        expect(error.data).toMatchObject({ code: "too_many_subscriptions", maxSubscriptions: MAX_SESSION_SUBSCRIPTIONS });
        expect(error.message).toContain(`at most ${MAX_SESSION_SUBSCRIPTIONS}`);
      }
      await agent.client.unsubscribeResource({ uri: text(1_000) });
      await agent.client.subscribeResource({ uri: text(5_000) });
    } finally {
      await agent.client.close();
    }
  });

  test("an update reaches only the sessions that subscribed: not another session of the same consumer, not a consumer whose virtual server does not expose the URI", async () => {
    const alice = await routedAgent(aliceKey, "library", ({ http }) => (http === "GET" ? B : A));
    const idle = await routedAgent(aliceKey, "library", ({ http }) => (http === "GET" ? B : C));
    const bob = await routedAgent(bobKey, "other", ({ http }) => (http === "GET" ? B : A));
    try {
      // The same URI as Bob's virtual server would expose it, and the form it has on Alice's: neither is Bob's.
      for (const uri of [text(3), "demo://resource/dynamic/text/3"]) {
        const error = await rpcError(bob.client.subscribeResource({ uri }));
        expect(error.code, uri).toBe(-32602);
        expect(error.data?.code, uri).toBe("resource_not_found");
      }
      // A URI longer than any record may hold is refused, and the session lives on.
      const long = await rpcError(alice.client.subscribeResource({ uri: text(9).padEnd(5_000, "9") }));
      expect(long.code).toBe(-32602);
      expect(long.data?.code).toBe("resource_not_found");
      // What Bob's virtual server does expose, he may follow.
      await bob.client.subscribeResource({ uri: STATIC });
      await alice.client.subscribeResource({ uri: text(3) });
      await eventually(() => (alice.stream() === B && idle.stream() === B && bob.stream() === B ? true : undefined));

      await updatesTurned(alice, "Started");
      await eventually(() => (count(alice.updates, text(3)) > 0 && count(bob.updates, STATIC) > 0 ? true : undefined), 8_000);
      // Every replica hears every update at once: a misdelivered one would have arrived by now.
      await new Promise((r) => setTimeout(r, 300));
      expect(new Set(alice.updates)).toEqual(new Set([text(3)]));
      expect(new Set(bob.updates)).toEqual(new Set([STATIC]));
      expect(idle.updates).toEqual([]);
    } finally {
      await updatesTurned(alice, "Stopped").catch(() => undefined);
      await Promise.all([alice, idle, bob].map((a) => a.client.close()));
    }
  });

  // Last: it stops replica B.
  test("a holder that is gone does not hold up a change: setLevel is answered at once and holds on the replicas left", async () => {
    let callsTo = B;
    const agent = await routedAgent(aliceKey, "library", ({ rpc }) => (rpc === "tools/call" ? callsTo : A));
    try {
      // B adopts the session (and is named among its holders), then goes away.
      await agent.client.callTool({ name: tools["modern/logs"]!, arguments: {} });
      await gateways!.processes[1]!.stop();
      const started = Date.now();
      await agent.client.setLoggingLevel("error");
      // NATS answers "no responders" for the gone replica: no wait for the 1 s bound.
      expect(Date.now() - started).toBeLessThan(500);
      callsTo = C;
      await agent.client.callTool({ name: tools["modern/logs"]!, arguments: {} });
      expect(agent.logs).toEqual([{ level: "error", data: "error from the fixture" }]);
    } finally {
      await agent.client.close();
    }
  });
});
