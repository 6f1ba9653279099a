import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { legacyAgent, modernAgent, type Agent } from "../helpers/eraAgents.js";
import { eventually } from "../helpers/mcp.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * SEP-1303 (2025-11-25, kept in 2026-07-28): arguments that fail the tool's input schema are a Tool
 * Execution Error, a result with `isError: true` whose text tells the model what to correct; only a
 * request that fails CallToolRequest itself (no string `name`, `arguments` not an object) is a
 * protocol error. 2025-06-18 and earlier list "Invalid arguments" among the protocol errors: -32602.
 * Before (helper-188): every revision was answered -32602 `invalid_arguments`.
 */
describe.each(["on", "off"] as const)("arguments the pinned schema refuses (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let add: string;
  let key: string;
  let agents: Agent[];

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    add = (await createVirtualServer(stack, "args", [{ upstream: "rec", tool: "add" }]))["rec/add"]!;
    key = (await grantedConsumers(stack, "args", ["ada"])).ada!;
    agents = [await legacyAgent(stack.mcpUrl("args"), key), await modernAgent(stack.mcpUrl("args"), key)];
  }, 60_000);

  afterAll(async () => {
    for (const agent of agents ?? []) await agent.close();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  /** A raw 2025 session of `revision`: its tools/call answers as they came. */
  async function legacySession(revision: string) {
    const base = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` };
    const post = async (headers: Record<string, string>, message: unknown) => {
      const res = await fetch(stack.mcpUrl("args"), { method: "POST", headers: { ...base, ...headers }, body: JSON.stringify(message) });
      const text = await res.text();
      return { res, body: text ? (JSON.parse(text.startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).pop()!.slice(5)) as Record<string, any>) : undefined };
    };
    const init = await post({}, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: revision, capabilities: {}, clientInfo: { name: "raw", version: "1" } } });
    expect(init.body?.result.protocolVersion).toBe(revision);
    const headers = { "mcp-session-id": init.res.headers.get("mcp-session-id")!, "mcp-protocol-version": revision };
    await post(headers, { jsonrpc: "2.0", method: "notifications/initialized" });
    let id = 1;
    return async (params: Record<string, unknown>, meta?: Record<string, unknown>) => (await post(headers, { jsonrpc: "2.0", id: id++, method: "tools/call", params: { ...params, ...(meta ? { _meta: meta } : {}) } })).body!;
  }

  test("2025-11-25 (1.x client) and 2026-07-28 (2.x client): a result with isError saying what is wrong, nothing upstream", async () => {
    const before = recording.calls.length;
    for (const agent of agents) {
      for (const [args, problem] of [
        [{ a: "one", b: 2 }, "/a must be number"],
        [{ a: 1 }, "must have required property 'b'"],
      ] as const) {
        const result = await agent.callTool(add, args);
        expect(result.isError, `${agent.era}: ${JSON.stringify(result)}`).toBe(true);
        expect(result.content).toHaveLength(1);
        expect(result.content[0].type).toBe("text");
        expect(result.content[0].text).toContain(`invalid arguments for tool '${add}'`);
        expect(result.content[0].text).toContain(problem);
        expect(result.structuredContent).toBeUndefined();
      }
    }
    expect(agents.map((a) => a.era)).toEqual(["2025-11-25", "2026-07-28"]);
    expect(recording.calls.length).toBe(before);
  });

  test("the same result on the SDK lane (a progress token) and on the wire: 2026-07-28 with resultType complete", async () => {
    const before = recording.calls.length;
    const call = await legacySession("2025-11-25");
    const legacy = await call({ name: add, arguments: { a: "one", b: 2 } }, { progressToken: "p" });
    expect(legacy.result, JSON.stringify(legacy)).toMatchObject({ isError: true, content: [{ type: "text", text: expect.stringContaining("/a must be number") }] });
    const plain = await call({ name: add, arguments: { a: "one", b: 2 } });
    expect(plain.result).toEqual(legacy.result);
    for (const meta of [undefined, { progressToken: "p" }]) {
      const modern = await modernRequest(stack.mcpUrl("args"), key, "tools/call", { name: add, arguments: { a: "one", b: 2 }, ...(meta ? { _meta: meta } : {}) }, {});
      expect(modern.status).toBe(200);
      expect(modern.result, JSON.stringify(modern.messages)).toMatchObject({ resultType: "complete", isError: true, content: [{ type: "text", text: legacy.result.content[0].text }] });
    }
    expect(recording.calls.length).toBe(before);
  });

  test("2025-06-18 keeps the protocol error its text lists (Invalid arguments): -32602 invalid_arguments", async () => {
    const call = await legacySession("2025-06-18");
    const answer = await call({ name: add, arguments: { a: "one", b: 2 } });
    expect(answer.error, JSON.stringify(answer)).toMatchObject({ code: -32602, data: { code: "invalid_arguments", errors: [{ path: "/a", keyword: "type" }] } });
    expect(answer.error.message).toContain("/a must be number");
  });

  test("a 2025-11-25 task call stays -32602: its answer is a task or an error, not a tool result", async () => {
    const call = await legacySession("2025-11-25");
    const answer = await call({ name: add, arguments: { a: "one", b: 2 }, task: { ttl: 60_000 } });
    expect(answer.error, JSON.stringify(answer)).toMatchObject({ code: -32602, data: { code: "invalid_arguments" } });
  });

  test("a request that fails CallToolRequest itself stays a -32602 protocol error, in every revision", async () => {
    const legacy = await legacySession("2025-11-25");
    for (const params of [{ arguments: {} }, { name: add, arguments: [1] }]) {
      expect((await legacy(params)).error, JSON.stringify(params)).toMatchObject({ code: -32602 });
      const modern = await modernRequest(stack.mcpUrl("args"), key, "tools/call", params, {});
      expect(modern.error, JSON.stringify(modern.messages)).toMatchObject({ code: -32602 });
    }
  });

  test("recorded as refused: outcome error, errorCode invalid_arguments, counted so", async () => {
    const call = await legacySession("2025-11-25");
    await call({ name: add, arguments: { b: "two", a: 1 } });
    const records = await eventually(async () => {
      const items = (await stack.admin.get(`/v1/audit?consumer=ada&limit=1000`)).body.items as Record<string, unknown>[];
      return items.filter((r) => r.errorCode === "invalid_arguments").length >= 3 ? items : undefined;
    });
    expect(records.filter((r) => r.errorCode === "invalid_arguments").every((r) => r.outcome === "error" && r.exposedTool === add)).toBe(true);
    expect(records.some((r) => r.outcome === "ok")).toBe(false);
    const metrics = await (await fetch(`http://127.0.0.1:${(stack.gateway.metricsApp.server.address() as { port: number }).port}/metrics`)).text();
    expect(metrics).toMatch(/manifold_gateway_tool_calls_total\{[^}]*consumer="ada"[^}]*outcome="invalid_arguments"[^}]*\} \d+/);
    expect(metrics).not.toMatch(/manifold_gateway_tool_calls_total\{[^}]*consumer="ada"[^}]*outcome="ok"/);
  });
});
