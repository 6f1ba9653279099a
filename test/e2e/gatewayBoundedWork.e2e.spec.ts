import type { NatsServer } from "@manifold/nats-server";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * attack (helper-91): one granted request of ~1 MB whose cost grew with its elements held the
 * gateway's event loop for every tenant: a wrong-typed array answered with every validation error
 * (~950 ms, a 34 MB answer), a 2026-07-28 envelope walked twice by the SDK (4.7–5.9 s) and a 2025
 * initialize walked before its size bound (~2 s). Each is now refused after bounded work. And
 * params the SDKs cannot read are the caller's error (-32602, the first problem), not the
 * server's (-32603, every issue), and never go upstream.
 */
const ENVELOPE = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "x", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

describe("work bounded before it is done, whatever one request holds", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: SessionServer<McpServer>;
  let key: string;
  let tool: string;
  let calls = 0;

  beforeAll(async () => {
    nats = await startNats();
    upstream = await serveSessions(() => {
      const server = new McpServer({ name: "tags", version: "1" });
      server.registerTool("tag", { description: "tags things", inputSchema: { tags: z.array(z.string()) } }, async ({ tags }) => {
        calls++;
        return { content: [{ type: "text", text: String(tags.length) }] };
      });
      return server;
    });
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    await registerUpstreams(stack, { name: "tg", transport: { type: "streamable-http", url: upstream.url } });
    tool = (await createVirtualServer(stack, "vs", [{ upstream: "tg", tool: "tag" }]))["tg/tag"]!;
    key = (await grantedConsumers(stack, "vs", ["alice"])).alice!;
  }, 60_000);
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  const post = async (headers: Record<string, string>, message: unknown) => {
    const started = performance.now();
    const res = await fetch(stack.mcpUrl("vs"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify(message),
    });
    const raw = await res.text();
    // A 2025 session's answer comes as one SSE event.
    const text = raw.startsWith("event:") ? raw.split("\n").find((line) => line.startsWith("data: "))!.slice(6) : raw;
    const body = (text.startsWith("{") ? JSON.parse(text) : {}) as { error?: { code: number; message: string; data: Record<string, unknown> } };
    return { status: res.status, session: res.headers.get("mcp-session-id"), bytes: text.length, text, body, ms: performance.now() - started };
  };

  test("500,000 wrong items in an argument: one error, not 500,000", async () => {
    const tags = Array.from({ length: 500_000 }, () => 0);
    const res = await post(
      { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { tags }, _meta: ENVELOPE } },
    );
    // A tool execution error since 2026-12-07 (helper-188, SEP-1303), listing its problems in its text.
    const result = (res.body as { result?: { isError?: boolean; content: { text: string }[] } }).result;
    expect(result?.isError, res.text.slice(0, 500)).toBe(true);
    // Before: a 34 MB answer listing every item, in ~950 ms of one event loop.
    expect(res.bytes).toBeLessThan(4_096);
    expect((JSON.parse(result!.content[0]!.text.split("\n")[1]!) as unknown[]).length).toBeLessThanOrEqual(20);
  });

  test("a 2026-07-28 envelope of 1 MB is refused before the SDK walks it", async () => {
    const icons = Array.from({ length: 500_000 }, () => 1);
    const res = await post(
      { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { tags: [] }, _meta: { ...ENVELOPE, "io.modelcontextprotocol/clientInfo": { name: "x", version: "1", icons } } } },
    );
    expect(res.status).toBe(400);
    expect(res.body.error?.data).toMatchObject({ code: "invalid_request", maxBytes: 16_384 });
    // Before: 4.7–5.9 s, every tenant's requests waiting behind it.
    expect(res.ms, `answered in ${Math.round(res.ms)} ms`).toBeLessThan(2_000);
  });

  test("a 2025 initialize of 1 MB is refused for its size before the SDK walks it", async () => {
    const icons = Array.from({ length: 500_000 }, () => 1);
    const res = await post({}, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1", icons } } });
    // Before: `session_required` (an initialize!) after ~2 s of the SDK's schema.
    expect(res.body.error?.data).toMatchObject({ code: "invalid_request", maxBytes: 16_384 });
    expect(res.ms, `answered in ${Math.round(res.ms)} ms`).toBeLessThan(2_000);
  });

  test("ordinary requests of both eras still pass", async () => {
    const modern = await post(
      { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: tool, arguments: { tags: ["a", "b"] }, _meta: ENVELOPE } },
    );
    expect(modern.body).toMatchObject({ result: { content: [{ type: "text", text: "2" }] } });
    const init = await post({}, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } } });
    expect(init.status).toBe(200);
    expect(init.text).toContain('"protocolVersion":"2025-11-25"');
  });

  const answer = async (headers: Record<string, string>, method: string, params: Record<string, unknown>) => {
    return (await post(headers, { jsonrpc: "2.0", id: 1, method, params })).body.error;
  };
  const session = async () => {
    const init = await post({}, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } } });
    const headers = { "mcp-session-id": init.session!, "mcp-protocol-version": "2025-11-25" };
    await post(headers, { jsonrpc: "2.0", method: "notifications/initialized" });
    return headers;
  };

  // Unreadable params (found by helper-91): before, each was -32603 (the server's fault), its message every zod issue pretty-printed.
  test.each([
    ["tools/call", () => ({ name: tool, arguments: { tags: [] }, task: 5 }), "task: Invalid input: expected object, received number"],
    ["logging/setLevel", () => ({ level: "loud" }), "level: Invalid option"],
    ["tasks/list", () => ({ cursor: 5 }), "cursor: Invalid input: expected string, received number"],
    ["tasks/get", () => ({ taskId: 5 }), "taskId: Invalid input: expected string, received number"],
    ["tools/list", () => ({ cursor: 5 }), "cursor: Invalid input: expected string, received number"],
  ])("2025: %s with unreadable params", async (method, params, problem) => {
    const error = await answer(await session(), method, params());
    expect(error?.code).toBe(-32602);
    expect(error?.message).toContain(`invalid params for ${method}: params.${problem}`);
  });

  test.each([
    ["tools/list", () => ({ cursor: 5 }), "cursor: Invalid input: expected string, received number"],
    ["tools/call", () => ({ name: 5, arguments: {} }), "name: Invalid input: expected string, received number"],
  ])("2026-07-28: %s with unreadable params", async (method, params, problem) => {
    const error = await answer({ "mcp-protocol-version": "2026-07-28", "mcp-method": method }, method, { ...params(), _meta: ENVELOPE });
    expect(error?.code).toBe(-32602);
    expect(error?.message).toContain(`invalid params for ${method}: params.${problem}`);
  });

  test("2025: a task asked of a tool whose pin forbids tasks is -32601 from the gateway, not the upstream's error", async () => {
    const before = calls;
    const error = await answer(await session(), "tools/call", { name: tool, arguments: { tags: [] }, task: {} });
    // Before: forwarded, and answered -32012 with the upstream's "Server does not support task creation".
    expect(error).toMatchObject({ code: -32601, data: { code: "task_mode_unsupported" } });
    expect(calls).toBe(before);
  });

  // attack (helper-95): maps the SDK reads entry by entry were read whole before any bound: 60,000
  // answers in a tasks/update held the event loop ~445 ms before "at most 16 keys" refused them.
  // (60,000 are now refused before parsing, as a body of more than 10,000 keys: gatewayWideBodies.e2e.)
  test("a 2026-07-28 tasks/update of 9,000 answers is refused before any SDK reads them", async () => {
    const inputResponses = Object.fromEntries(Array.from({ length: 9_000 }, (_, i) => [`k${i}`, {}]));
    const res = await post({ "mcp-protocol-version": "2026-07-28", "mcp-method": "tasks/update" }, { jsonrpc: "2.0", id: 7, method: "tasks/update", params: { taskId: "t", inputResponses, _meta: ENVELOPE } });
    expect(res.body.error).toMatchObject({ code: -32602, message: "invalid params: params.inputResponses holds more than 16 entries", data: { code: "invalid_arguments", maxItems: 16 } });
  });
});
