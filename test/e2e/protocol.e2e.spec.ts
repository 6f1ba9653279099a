import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const ACCEPT = "application/json, text/event-stream";
const initialize = (protocolVersion = "2025-06-18") => ({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion, capabilities: {}, clientInfo: { name: "t", version: "1" } },
});

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

// Run with the seam's fast path on and off: the two must answer alike (GATEWAY_FAST_PATH).
describe.each(["on", "off"] as const)("protocol discipline at the gateway (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let names: Record<string, string>;
  let session: string;

  /** One raw HTTP exchange; SSE answers are reduced to the JSON-RPC message they carry. */
  const send = async (body: unknown, options: { session?: string | null; headers?: Record<string, string>; vs?: string; method?: string } = {}): Promise<Answer> => {
    const res = await fetch(stack.mcpUrl(options.vs ?? "proto"), {
      method: options.method ?? "POST",
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        accept: ACCEPT,
        "mcp-protocol-version": "2025-06-18",
        ...(options.session === null ? {} : { "mcp-session-id": options.session ?? session }),
        ...options.headers,
      },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    const data = text.includes("data:") ? text.split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5))).pop() : text ? JSON.parse(text) : undefined;
    return { status: res.status, body: data, headers: res.headers };
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_BODY_LIMIT_BYTES: "4096", GATEWAY_FAST_PATH: fastPath }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "proto", [
      { upstream: "rec", tool: "add" },
      { upstream: "rec", tool: "slow" },
    ]);
    const init = await fetch(stack.mcpUrl("proto"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: ACCEPT },
      body: JSON.stringify(initialize()),
    });
    session = init.headers.get("mcp-session-id")!;
    await init.text();
    await send({ jsonrpc: "2.0", method: "notifications/initialized" });
  });

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test.each<[string, number, number, string | undefined, () => Promise<Answer>]>([
    ["malformed JSON", 400, -32700, "parse_error", () => send("{not json")],
    ["a body that is not a JSON-RPC message", 400, -32600, "invalid_request", () => send({ hello: "world" })],
    ["a message without jsonrpc 2.0", 400, -32600, "invalid_request", () => send({ jsonrpc: "1.0", id: 3, method: "ping" })],
    ["an empty batch", 400, -32600, "invalid_request", () => send([])],
    // Valid JSON, an invalid JSON-RPC request: the 1.x transport answered -32700 "Parse error" (helper-150).
    ["a request whose id is a fraction", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 1.5, method: "ping" })],
    ["a request whose id is null", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: null, method: "ping" })],
    ["a batch holding a request whose id is an object", 400, -32600, "invalid_request", () => send([{ jsonrpc: "2.0", id: 1, method: "ping" }, { jsonrpc: "2.0", id: {}, method: "ping" }])],
    // Valid JSON the 1.x schema refuses as a message: its transport answered each -32700 "Parse error",
    // as if the body were not JSON, with no data.code (helper-154).
    ["a request with a member JSON-RPC does not define", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "ping", extra: 1 })],
    ["a request whose params are an array", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "tools/list", params: [1] })],
    ["a request whose params are null", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "ping", params: null })],
    ["a request whose _meta is not an object", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "tools/list", params: { _meta: [] } })],
    ["a call whose progress token is an object", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "x", arguments: {}, _meta: { progressToken: {} } } })],
    ["a call whose related task names no string id", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: "x", arguments: {}, _meta: { "io.modelcontextprotocol/related-task": { taskId: 5 } } } })],
    ["a notification whose params are an array", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", method: "notifications/roots/list_changed", params: [1] })],
    ["a request that is also a result", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, method: "ping", result: {} })],
    ["a response with both a result and an error", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, result: {}, error: { code: 1, message: "x" } })],
    ["a result that is not an object", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, result: 5 })],
    ["an error that is not an object", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, error: "x" })],
    ["an error whose code is not an integer", 400, -32600, "invalid_request", () => send({ jsonrpc: "2.0", id: 3, error: { code: "1", message: "x" } })],
    ["a request without a session", 400, -32000, "session_required", () => send({ jsonrpc: "2.0", id: 4, method: "tools/list" }, { session: null })],
    ["an unknown session", 404, -32001, "session_not_found", () => send({ jsonrpc: "2.0", id: 5, method: "tools/list" }, { session: "no-such-session" })],
    ["an unknown virtual server", 404, -32044, "unknown_virtual_server", () => send(initialize(), { session: null, vs: "ghost" })],
    ["a body over the limit", 413, -32600, "body_too_large", () => send({ jsonrpc: "2.0", id: 6, method: "ping", params: { pad: "x".repeat(8_000) } })],
    ["an unknown method", 200, -32601, undefined, () => send({ jsonrpc: "2.0", id: 7, method: "no/such/method" })],
    ["tools/call of an unknown tool", 200, -32602, "unknown_tool", () => send({ jsonrpc: "2.0", id: 8, method: "tools/call", params: { name: "nope", arguments: {} } })],
    ["tools/call without a name", 200, -32602, "invalid_arguments", () => send({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { arguments: {} } })],
    ["an unsupported protocol version header", 400, -32000, undefined, () => send({ jsonrpc: "2.0", id: 10, method: "ping" }, { headers: { "mcp-protocol-version": "1999-01-01" } })],
    ["a client that does not accept JSON and SSE", 406, -32000, undefined, () => send({ jsonrpc: "2.0", id: 11, method: "ping" }, { headers: { accept: "text/html" } })],
  ])("%s → HTTP %i, JSON-RPC %i", async (_what, status, code, dataCode, exchange) => {
    const { status: actual, body } = await exchange();
    expect(actual).toBe(status);
    expect(body.jsonrpc).toBe("2.0");
    expect(body.error.code).toBe(code);
    if (dataCode) expect(body.error.data.code).toBe(dataCode);
    expect(body.error.message).not.toMatch(/at .*\.js:\d+/);
  });

  test("ping answers an empty result", async () => {
    const { status, body } = await send({ jsonrpc: "2.0", id: 20, method: "ping" });
    expect(status).toBe(200);
    expect(body).toEqual({ jsonrpc: "2.0", id: 20, result: {} });
  });

  test("well-formed notifications and answers are still taken, whatever they carry in _meta", async () => {
    for (const message of [
      { jsonrpc: "2.0", method: "notifications/roots/list_changed", params: { _meta: { note: 1 } } },
      { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 999, reason: "x" } },
      { jsonrpc: "2.0", id: 998, result: { _meta: { progressToken: "t" }, extra: [1] } },
      { jsonrpc: "2.0", id: "997", error: { code: -1, message: "no", data: { any: "thing" } } },
    ]) {
      const { status } = await send(message);
      expect(status, JSON.stringify(message)).toBe(202);
    }
    const { status, body } = await send({ jsonrpc: "2.0", id: 21, method: "ping", params: { _meta: { progressToken: 5, "io.modelcontextprotocol/related-task": { taskId: "t" }, other: null } } });
    expect(status).toBe(200);
    expect(body).toEqual({ jsonrpc: "2.0", id: 21, result: {} });
  });

  test("an unsupported protocol version at initialize is negotiated to a supported one", async () => {
    const res = await fetch(stack.mcpUrl("proto"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT }, body: JSON.stringify(initialize("1999-01-01")) });
    const text = await res.text();
    const answer = JSON.parse(text.split("\n").find((l) => l.startsWith("data:"))!.slice(5));
    expect(res.status).toBe(200);
    expect(answer.result.protocolVersion).toMatch(/^20\d\d-\d\d-\d\d$/);
    expect(answer.result.protocolVersion).not.toBe("1999-01-01");
  });

  test("arguments are validated against the pinned input schema before anything goes upstream", async () => {
    // A 2025-11-25 agent is answered a tool execution error (SEP-1303; invalidArgumentResults.e2e), a 2025-06-18 one -32602.
    await using agent = await connectHttp(stack.mcpUrl("proto"));
    const before = recording.calls.length;
    for (const call of [
      agent.callTool({ name: names["rec/add"]!, arguments: { a: "one", b: 2 } }),
      // With a progress token the call takes the SDK path: it is validated all the same.
      agent.callTool({ name: names["rec/add"]!, arguments: { a: 1 } }, undefined, { onprogress: () => undefined }),
    ]) {
      const result = (await call) as { isError?: boolean; content: { text: string }[] };
      expect(result.isError).toBe(true);
      expect(result.content[0]!.text).toContain(names["rec/add"]!);
    }
    const refused = await send({ jsonrpc: "2.0", id: 12, method: "tools/call", params: { name: names["rec/add"]!, arguments: { a: 1 } } });
    expect(refused.body.error.code).toBe(-32602);
    expect(refused.body.error.data.code).toBe("invalid_arguments");
    expect(refused.body.error.data.errors.length).toBeGreaterThan(0);
    expect(refused.body.error.message).toContain(names["rec/add"]!);
    expect(recording.calls.length).toBe(before);
  });

  test("DELETE ends a session everywhere; the id is then unknown", async () => {
    const init = await fetch(stack.mcpUrl("proto"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT }, body: JSON.stringify(initialize()) });
    const id = init.headers.get("mcp-session-id")!;
    await init.text();
    const deleted = await send(undefined, { method: "DELETE", session: id });
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
    const after = await send({ jsonrpc: "2.0", id: 30, method: "tools/list" }, { session: id });
    expect(after.status).toBe(404);
    expect(after.body.error.code).toBe(-32001);
  });

  test("graceful shutdown lets a call in flight finish", async () => {
    await using agent = await connectHttp(stack.mcpUrl("proto"));
    const call = agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 400 } });
    await new Promise((r) => setTimeout(r, 100));
    const closing = stack.gateway.close();
    expect((await call).content).toEqual([{ type: "text", text: "slept 400 ms" }]);
    await closing;
  });
});
