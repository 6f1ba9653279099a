import type { NatsServer } from "@manifold/nats-server";
import { request as httpRequest, type OutgoingHttpHeaders } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const MODERN = "2026-07-28";
const envelope = { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } };

/** One raw POST with headers that may repeat (an array sends one line per value). */
function post(url: string, headers: OutgoingHttpHeaders, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", agent: false, headers: { "content-length": Buffer.byteLength(body), ...headers } });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

// The 2026-07-28 edge under an attacker's requests, with the fast path on and off: the check and
// the router must read one and the same thing (duplicate headers, version header against envelope,
// batches, the Base64 sentinel form of Mcp-Name), and nothing refused reaches the upstream.
describe.each(["on", "off"] as const)("2026-07-28 edge probes (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "edge", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
    ]);
    keys = await grantedConsumers(stack, "edge", ["alice", "bob"]);
    await stack.admin.post("/v1/virtual-servers/edge/grants", { grantId: "bob-deny", subject: { consumer: "bob" }, deniedTools: [names["rec/add"]] }).catch(() => undefined);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  const base = (key: string, method: string): OutgoingHttpHeaders => ({
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    authorization: `Bearer ${key}`,
    "mcp-protocol-version": MODERN,
    "mcp-method": method,
  });
  const callBody = (name: string, args: Record<string, unknown>, meta: Record<string, unknown> = envelope) => JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name, arguments: args, _meta: meta } });

  test("duplicate Mcp-Method / Mcp-Name / MCP-Protocol-Version are refused, never routed by one copy", async () => {
    const echo = names["rec/echo"]!;
    const before = recording.calls.length;
    const cases: [string, OutgoingHttpHeaders][] = [
      ["two Mcp-Method", { ...base(keys.alice!, "tools/call"), "mcp-method": ["tools/call", "tools/list"], "mcp-name": echo }],
      ["two equal Mcp-Method", { ...base(keys.alice!, "tools/call"), "mcp-method": ["tools/call", "tools/call"], "mcp-name": echo }],
      ["two Mcp-Name", { ...base(keys.alice!, "tools/call"), "mcp-name": [echo, names["rec/add"]!] }],
      ["two MCP-Protocol-Version", { ...base(keys.alice!, "tools/call"), "mcp-protocol-version": [MODERN, "2025-11-25"], "mcp-name": echo }],
    ];
    for (const [label, headers] of cases) {
      const answer = await post(stack.mcpUrl("edge"), headers, callBody(echo, { message: "dup" }));
      expect(answer.status, label).toBe(400);
    }
    expect(recording.calls.length - before).toBe(0);
  });

  test("two Authorization headers: the first is the one checked and the one used (no mix)", async () => {
    const echo = names["rec/echo"]!;
    // Two header lines (node's typings allow one Authorization value; the wire takes any number).
    const twice: OutgoingHttpHeaders = { ...base(keys.alice!, "tools/call"), "mcp-name": echo, ["authorization" as string]: ["Bearer not-a-key", `Bearer ${keys.alice}`] };
    const answer = await post(stack.mcpUrl("edge"), twice, callBody(echo, { message: "x" }));
    expect(answer.status).toBe(401);
  });

  test("the protocol version header and the envelope disagree, or the body has no envelope: refused, nothing routed", async () => {
    const echo = names["rec/echo"]!;
    const before = recording.calls.length;
    const v2025 = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-protocol-version": "2025-11-25", "mcp-name": echo }, callBody(echo, { message: "v" }));
    expect(v2025.status).toBe(400);
    const wrongEnvelope = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": echo }, callBody(echo, { message: "v" }, { ...envelope, "io.modelcontextprotocol/protocolVersion": "2025-11-25" }));
    expect(wrongEnvelope.status).toBe(400);
    const noEnvelope = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": echo }, JSON.stringify({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { name: echo, arguments: { message: "v" } } }));
    expect(noEnvelope.status).toBe(400);
    expect(recording.calls.length - before).toBe(0);
  });

  test("batches, notifications and responses on the 2026-07-28 path reach no upstream", async () => {
    const echo = names["rec/echo"]!;
    const before = recording.calls.length;
    const one = JSON.parse(callBody(echo, { message: "batch" }));
    const batch = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": echo }, JSON.stringify([one, { ...one, id: 10 }]));
    expect(batch.status).toBeGreaterThanOrEqual(400);
    const notification = await post(stack.mcpUrl("edge"), base(keys.alice!, "notifications/cancelled"), JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 9, _meta: envelope } }));
    expect(notification.status).toBe(202);
    const response = await post(stack.mcpUrl("edge"), base(keys.alice!, "tools/call"), JSON.stringify({ jsonrpc: "2.0", id: 9, result: { _meta: envelope } }));
    expect(response.status).toBeGreaterThanOrEqual(400);
    expect(recording.calls.length - before).toBe(0);
  });

  test("a call whose id is neither a string nor an integer is invalid_request (-32600), and reaches no upstream", async () => {
    const echo = names["rec/echo"]!;
    const before = recording.calls.length;
    for (const id of [1.5, null, { n: 1 }]) {
      const answer = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": echo }, JSON.stringify({ ...JSON.parse(callBody(echo, { message: "id" })), id }));
      expect(answer.status, JSON.stringify(id)).toBe(400);
      expect(JSON.parse(answer.text).error, JSON.stringify(id)).toMatchObject({ code: -32600, data: { code: "invalid_request" } });
    }
    expect(recording.calls.length - before).toBe(0);
  });

  test("a message the JSON-RPC schema refuses (extra member, params or _meta not an object, a bad progress token) is invalid_request (-32600) with its code, and reaches no upstream", async () => {
    const echo = names["rec/echo"]!;
    const before = recording.calls.length;
    const call = JSON.parse(callBody(echo, { message: "shape" }));
    for (const [label, body] of [
      ["an extra member", { ...call, extra: 1 }],
      ["params an array", { ...call, params: [1] }],
      ["params null", { ...call, params: null }],
      ["a progress token that is an object", { ...call, params: { ...call.params, _meta: { ...envelope, progressToken: {} } } }],
      ["a request that is also a result", { ...call, result: {} }],
    ] as const) {
      const answer = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": echo }, JSON.stringify(body));
      expect(answer.status, label).toBe(400);
      expect(JSON.parse(answer.text).error, label).toMatchObject({ code: -32600, data: { code: "invalid_request" } });
    }
    expect(recording.calls.length - before).toBe(0);
  });

  test("a Base64-sentinel Mcp-Name routes by the body only, and must decode to it", async () => {
    const echo = names["rec/echo"]!;
    const add = names["rec/add"]!;
    const b64 = (s: string) => `=?base64?${Buffer.from(s).toString("base64")}?=`;
    const before = recording.calls.length;
    const same = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": b64(echo) }, callBody(echo, { message: "b64" }));
    expect(same.status).toBe(200);
    const other = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": b64(add) }, callBody(echo, { message: "b64" }));
    expect(other.status).toBe(400);
    const broken = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": "=?base64?@@@@?=" }, callBody(echo, { message: "b64" }));
    expect(broken.status).toBe(400);
    expect(recording.calls.length - before).toBe(1);
  });

  test("attack: a body name that is itself a Base64 sentinel, repeated verbatim in Mcp-Name, is refused on both paths", async () => {
    // The header decodes to the tool's name, the body names the literal sentinel: the SDK answers
    // -32020. Before, the fast path compared the raw strings and served the call (200, audited).
    const echo = names["rec/echo"]!;
    const sentinel = `=?base64?${Buffer.from(echo).toString("base64")}?=`;
    const literal = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": sentinel }, callBody(sentinel, { message: "b64" }));
    expect(literal.status).toBe(400);
    expect(JSON.parse(literal.text).error.code).toBe(-32020);
  });

  test("deep and wide _meta, clientCapabilities and clientInfo get coded answers", async () => {
    const echo = names["rec/echo"]!;
    let deep: unknown = {};
    for (let i = 0; i < 60; i++) deep = { d: deep };
    const wide = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i]));
    for (const [label, meta] of [
      ["deep capabilities", { ...envelope, "io.modelcontextprotocol/clientCapabilities": deep }],
      ["wide capabilities", { ...envelope, "io.modelcontextprotocol/clientCapabilities": wide }],
      ["wide clientInfo", { ...envelope, "io.modelcontextprotocol/clientInfo": { name: "x", version: "1", ...wide } }],
      ["clientInfo not an object", { ...envelope, "io.modelcontextprotocol/clientInfo": "x".repeat(500_000) }],
    ] as const) {
      const answer = await post(stack.mcpUrl("edge"), { ...base(keys.alice!, "tools/call"), "mcp-name": echo }, callBody(echo, { message: "m" }, meta as Record<string, unknown>));
      // A well-formed answer with a code, never a crash or a hang.
      expect(answer.status, label).toBeLessThan(500);
      expect(JSON.parse(answer.text), label).toHaveProperty("jsonrpc", "2.0");
    }
  });
});
