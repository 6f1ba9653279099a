import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { nested, nestedText, SPLIT_TEXT, startHostileUpstream, type HostileUpstream } from "../fixtures/hostileUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const ACCEPT = "application/json, text/event-stream";
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

/** Untrusted JSON (agents' requests, upstreams' results, admin bodies) is bounded: too deep is an answer, never a crash. */
describe("deeply nested JSON", () => {
  let nats: NatsServer;
  let stack: Stack;
  let hostile: HostileUpstream;
  let names: Record<string, string>;
  let session: string;

  const post = async (body: string) => {
    const res = await fetch(stack.mcpUrl("deep"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: ACCEPT, "mcp-protocol-version": "2025-06-18", "mcp-session-id": session },
      body,
    });
    return { status: res.status, body: JSON.parse(await res.text()) };
  };
  const stillServing = async () => {
    await using agent = await connectHttp(stack.mcpUrl("deep"));
    const result = await agent.callTool({ name: names["hostile/anything"]!, arguments: { fine: true } });
    expect(result.structuredContent).toEqual({ fine: true });
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, hostile] = await Promise.all([startStack(nats.url, { GATEWAY_BODY_LIMIT_BYTES: String(4 * 1024 * 1024) }), startHostileUpstream()]);
    await registerUpstreams(stack, { name: "hostile", transport: { type: "streamable-http", url: hostile.url } });
    names = await createVirtualServer(stack, "deep", [
      { upstream: "hostile", tool: "anything" },
      { upstream: "hostile", tool: "deep" },
      { upstream: "hostile", tool: "crlf" },
      { upstream: "hostile", tool: "split" },
      { upstream: "hostile", tool: "flood" },
      { upstream: "hostile", tool: "shapeless" },
    ]);
    const audit = await stack.admin.request("PUT", "/v1/virtual-servers/deep/audit", { recordValues: true, redactFields: ["authorization"] });
    expect(audit.status).toBe(200);
    const init = await fetch(stack.mcpUrl("deep"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT }, body: JSON.stringify(INIT) });
    session = init.headers.get("mcp-session-id")!;
    await init.text();
  });

  afterAll(async () => {
    await stack?.close();
    await hostile?.close();
    await nats?.stop();
  });

  test.each([3_000, 10_000, 200_000])("tools/call arguments nested %i deep are refused with an error naming the limit; the gateway keeps serving", async (depth) => {
    const body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"${names["hostile/anything"]}","arguments":${nestedText(depth)}}}`;
    const answer = await post(body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ jsonrpc: "2.0", error: { code: -32600, data: { code: "json_too_deep", maxDepth: 64 } } });
    expect(answer.body.error.message).toMatch(/64/);
    await stillServing();
  });

  test("arguments just within the limit are served and audited with their values", async () => {
    await using agent = await connectHttp(stack.mcpUrl("deep"));
    const result = await agent.callTool({ name: names["hostile/anything"]!, arguments: nested(50, "leaf") as Record<string, unknown> });
    expect(result.structuredContent).toEqual(nested(50, "leaf"));
    const audited = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/audit?tool=anything&limit=1000");
      return body.items.find((r: { arguments?: unknown }) => JSON.stringify(r.arguments ?? null).includes("leaf"));
    });
    expect(audited.arguments).toEqual(nested(50, "leaf"));
  });

  test.each([
    ["fast lane", {}],
    ["SDK path (progress token)", { onprogress: () => undefined }],
  ])("an upstream result nested 3,000 deep is an upstream error, not a crash (%s)", async (_lane, options) => {
    await using agent = await connectHttp(stack.mcpUrl("deep"));
    const error = await rpcError(agent.callTool({ name: names["hostile/deep"]!, arguments: { depth: 3_000 } }, undefined, options));
    expect(error.code).toBe(-32012);
    expect(error.data).toMatchObject({ code: "upstream_error", reason: "result_too_deep" });
    await stillServing();
  });

  test.each([
    ["fast lane", {}],
    ["SDK path (progress token)", { onprogress: () => undefined }],
  ])("an upstream result nested exactly 128 deep is answered, one level more refused (%s)", async (_lane, options) => {
    await using agent = await connectHttp(stack.mcpUrl("deep"));
    // The result is one level over its structured content: 127 objects in it make 128.
    const result = await agent.callTool({ name: names["hostile/deep"]!, arguments: { depth: 127 } }, undefined, options);
    expect(result.structuredContent).toEqual(nested(127));
    const error = await rpcError(agent.callTool({ name: names["hostile/deep"]!, arguments: { depth: 128 } }, undefined, options));
    expect(error.data).toMatchObject({ code: "upstream_error", reason: "result_too_deep", maxDepth: 128 });
  });

  test("admin bodies nested too deep get 400 json_too_deep naming the limit", async () => {
    for (const depth of [100, 5_000, 100_000]) {
      const res = await stack.admin.request("POST", "/v1/upstreams", `{"name":"x","transport":${nestedText(depth)}}`);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: "json_too_deep" });
      expect(res.body.error.message).toMatch(/64/);
    }
    expect((await stack.admin.get("/v1/upstreams")).status).toBe(200);
  });

  // What an upstream streams back is read as the SSE specification says, and never past what one bus message carries.
  test.each([
    ["fast lane", {}],
    ["SDK path (progress token)", { onprogress: () => undefined }],
  ])("SSE answers framed with CRLF, and cut inside multi-byte characters, are read whole (%s)", async (_lane, options) => {
    await using agent = await connectHttp(stack.mcpUrl("deep"));
    const crlf = await agent.callTool({ name: names["hostile/crlf"]!, arguments: {} }, undefined, options);
    expect(crlf.content).toEqual([{ type: "text", text: "crlf ok" }]);
    const split = await agent.callTool({ name: names["hostile/split"]!, arguments: {} }, undefined, options);
    expect(split.content).toEqual([{ type: "text", text: SPLIT_TEXT }]);
  });

  test.each([
    ["a JSON body", false],
    ["one SSE event", true],
  ])("attack: an upstream answer that never ends (%s) is cut once it outgrows a bus message; the connector keeps serving", async (_what, sse) => {
    await using agent = await connectHttp(stack.mcpUrl("deep"));
    const before = hostile.flooded.length;
    const error = await rpcError(agent.callTool({ name: names["hostile/flood"]!, arguments: { sse } }));
    expect(error.data).toMatchObject({ code: "payload_too_large", maxBytes: 1024 * 1024 });
    expect(error.message).toMatch(/upstream 'hostile' returned more than \d+ bytes for 'flood', more than the message bus carries \(1048576 bytes/);
    // The connector stopped reading near the limit: it did not buffer what the upstream would have sent (256 MB).
    const written = await eventually(async () => hostile.flooded[before]);
    expect(written).toBeLessThan(16 * 1024 * 1024);
    await stillServing();
  });

  test("attack: a tools/call result that is not an object (null, a number, an array, none) is an upstream error, never spliced into the answer", async () => {
    for (const value of ["null", "7", "[1]", '"text"', undefined]) {
      const { status, body } = await post(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"${names["hostile/shapeless"]}","arguments":${JSON.stringify(value === undefined ? {} : { value })}}}`);
      // Before: `null` went out as the agent's result, and no result at all as an internal error.
      expect(status, String(value)).toBe(200);
      expect(body.error?.data?.code, String(value)).toBe("upstream_error");
      expect(body.error.message).toContain("not an object");
    }
    await stillServing();
  });

  test("attack: a tool list that never ends (a JSON body) is cut near one bus message's size; the connector keeps serving", async () => {
    await using flooding = await startHostileUpstream("json");
    const registered = await stack.admin.post("/v1/upstreams", { name: "flood-json", transport: { type: "streamable-http", url: flooding.url } });
    expect(registered.body.discovery).toMatchObject({ status: "failed", error: { code: "payload_too_large" } });
    const written = await eventually(async () => flooding.flooded[0]);
    expect(written).toBeLessThan(16 * 1024 * 1024);
    await stillServing();
  });

  test("attack: a tool list that is one SSE event without end is read without being held (256 MB sent); the connector keeps serving", async () => {
    await using flooding = await startHostileUpstream("sse");
    // The connector runs in this process: what it holds of the event shows in its memory.
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    try {
      const registered = await stack.admin.post("/v1/upstreams", { name: "flood-sse", transport: { type: "streamable-http", url: flooding.url } });
      expect(registered.body.discovery).toMatchObject({ status: "failed" });
    } finally {
      clearInterval(sampler);
    }
    // A stream may carry other answers, so it is not cut: the event is dropped as it arrives.
    expect(peak - before).toBeLessThan(128 * 1024 * 1024);
    await stillServing();
  });
});
