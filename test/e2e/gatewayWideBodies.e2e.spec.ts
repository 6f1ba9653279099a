import type { NatsServer } from "@manifold/nats-server";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * attack (helper-110): one granted ~1 MB request whose body held ~90,000 object keys (a ping's
 * params, a call's arguments, many small objects) held the gateway's event loop for every tenant
 * for 0.6–1.1 s (parse, then the SDK's zod walks over every key). A body is now measured for its
 * keys in the same pass over the raw text that measures its nesting, and refused past 10,000
 * before anything parses it; wide bodies also cost their caller more of its request budget.
 */
const ENVELOPE = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "x", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
const MODERN_PING = { "mcp-protocol-version": "2026-07-28", "mcp-method": "ping" };
/** ~1 MB of keys: `{"k0":0,"k1":0,…}`. */
const keys = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, 0]));

describe("a body of many keys is refused before anything parses it", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: SessionServer<McpServer>;
  let key: string;
  let other: string;
  let tool: string;

  beforeAll(async () => {
    nats = await startNats();
    upstream = await serveSessions(() => {
      const server = new McpServer({ name: "echo", version: "1" });
      server.registerTool("echo", { description: "echoes", inputSchema: { text: z.string().optional() } }, async () => ({ content: [{ type: "text", text: "ok" }] }));
      return server;
    });
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    await registerUpstreams(stack, { name: "ec", transport: { type: "streamable-http", url: upstream.url } });
    tool = (await createVirtualServer(stack, "vs", [{ upstream: "ec", tool: "echo" }]))["ec/echo"]!;
    ({ alice: key, bob: other } = (await grantedConsumers(stack, "vs", ["alice", "bob"])) as { alice: string; bob: string });
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  const post = async (headers: Record<string, string>, message: unknown, bearer = key) => {
    const res = await fetch(stack.mcpUrl("vs"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${bearer}`, ...headers },
      // Built before it is timed: the test's own stringify would hold this process's event loop too.
      body: typeof message === "string" ? message : JSON.stringify(message),
    });
    const raw = await res.text();
    const text = raw.startsWith("event:") ? raw.split("\n").find((line) => line.startsWith("data: "))!.slice(6) : raw;
    const body = (text.startsWith("{") ? JSON.parse(text) : {}) as { error?: { code: number; message: string; data: Record<string, unknown> }; result?: unknown };
    return { status: res.status, session: res.headers.get("mcp-session-id"), body };
  };

  /** Sends the attack while another tenant's `/healthz` is asked again and again: the longest that waited is how long the event loop was held. */
  const whileHealthz = async <T>(attack: () => Promise<T>): Promise<{ answer: T; heldMs: number }> => {
    let done = false;
    let heldMs = 0;
    const probing = (async () => {
      while (!done) {
        const started = performance.now();
        await fetch(`${stack.gatewayUrl}/healthz`).then((r) => r.text());
        heldMs = Math.max(heldMs, performance.now() - started);
      }
    })();
    const answer = await attack().finally(() => (done = true));
    await probing;
    return { answer, heldMs };
  };

  const session = async () => {
    const init = await post({}, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } } });
    const headers = { "mcp-session-id": init.session!, "mcp-protocol-version": "2025-11-25" };
    await post(headers, { jsonrpc: "2.0", method: "notifications/initialized" });
    return headers;
  };

  const refusedWide = (answer: { status: number; body: { error?: { code: number; data: Record<string, unknown> } } }) => {
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: -32600, data: { code: "json_too_wide", maxKeys: 10_000 } });
  };

  test.each([
    ["a 2025 ping whose params hold 90,000 keys", async () => [await session(), { jsonrpc: "2.0", id: 1, method: "ping", params: keys(90_000) }] as const],
    // 2026-07-28 has no ping (-32601): the SDK parsed and walked the body before it said so.
    ["a 2026-07-28 ping whose params hold 90,000 keys", async () => [MODERN_PING, { jsonrpc: "2.0", id: 1, method: "ping", params: { ...keys(90_000), _meta: ENVELOPE } }] as const],
    ["a 2026-07-28 ping whose _meta holds 90,000 keys", async () => [MODERN_PING, { jsonrpc: "2.0", id: 1, method: "ping", params: { _meta: { ...ENVELOPE, ...keys(90_000) } } }] as const],
    [
      "a 2026-07-28 call whose arguments hold 90,000 keys",
      async () => [{ "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool }, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: keys(90_000), _meta: ENVELOPE } }] as const,
    ],
    ["a 2025 ping of 120,000 small objects", async () => [await session(), { jsonrpc: "2.0", id: 1, method: "ping", params: { a: Array.from({ length: 120_000 }, () => ({ k: 0 })) } }] as const],
    ["a 2025-03-26 batch of pings holding 90,000 keys between them", async () => [{}, Array.from({ length: 90 }, (_, i) => ({ jsonrpc: "2.0", id: i, method: "ping", params: keys(1_000) }))] as const],
  ])("%s", async (_, attack) => {
    const [headers, message] = await attack();
    const text = JSON.stringify(message);
    const { answer, heldMs } = await whileHealthz(() => post(headers, text));
    refusedWide(answer);
    // Before: 0.6–1.1 s while the gateway parsed and the SDK walked every key (the batch and the small objects: 250 and 80 ms); after: 3–66 ms.
    expect(heldMs, `another tenant's /healthz waited up to ${Math.round(heldMs)} ms`).toBeLessThan(200);
  });

  test("a body of 10,000 keys is still served, and costs its caller more than a narrow one", async () => {
    const headers = await session();
    const text = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping", params: keys(9_990) });
    const { answer: served, heldMs } = await whileHealthz(() => post(headers, text));
    expect(served.body.result).toEqual({});
    // ~40–90 ms of the event loop: why such a body costs about half a second's budget.
    expect(heldMs, `another tenant's /healthz waited up to ${Math.round(heldMs)} ms`).toBeLessThan(1_000);
    // 1,000 units a second: narrow pings cost 10 each, but a few wide ones spend the caller's second.
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push((await post(headers, text.replace('"id":1', `"id":${2 + i}`))).status);
    expect(answers).toContain(429);
    // Another caller is not charged for it.
    const bob = await post({ "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" }, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: ENVELOPE } }, other);
    expect(bob.body.result).toMatchObject({ tools: [{ name: tool }] });
  });
});
