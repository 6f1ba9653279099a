import { classifyInboundRequest } from "@modelcontextprotocol/server";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, test } from "vitest";
import { callIdOf, classify, type McpCall } from "./mcpCall.js";

const envelope = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} };
/** As node hands a request over: a body's length in its header, unless it came chunked. */
const request = (method: string, headers: Record<string, string>, body?: unknown, chunked = false) => ({
  method,
  headers: body === undefined || chunked ? headers : { "content-length": String(Buffer.byteLength(JSON.stringify(body))), ...headers },
  body,
});

/** The SDK's own verdict, reduced to what the seam keeps. */
function sdkVerdict({ method, headers, body }: ReturnType<typeof request>) {
  const outcome = classifyInboundRequest({
    httpMethod: method,
    protocolVersionHeader: headers["mcp-protocol-version"],
    mcpMethodHeader: headers["mcp-method"],
    mcpNameHeader: headers["mcp-name"],
    body,
  });
  return outcome.kind === "legacy" ? "legacy" : outcome.kind === "reject" ? "refused" : "modern";
}

describe("classify: the era of a request, as the 2.x SDK decides it", () => {
  test.each([
    ["a 2025 tools/call in a session", request("POST", { "mcp-protocol-version": "2025-11-25" }, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "x" } })],
    ["a 2025-06-18 tools/list", request("POST", { "mcp-protocol-version": "2025-06-18" }, { jsonrpc: "2.0", id: 1, method: "tools/list" })],
    ["a 2025 request whose _meta has a progress token", request("POST", { "mcp-protocol-version": "2025-03-26" }, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { _meta: { progressToken: 1 } } })],
    ["initialize without a version header", request("POST", {}, { jsonrpc: "2.0", id: 1, method: "initialize", params: {} })],
    ["a GET stream", request("GET", { "mcp-protocol-version": "2025-11-25" })],
    ["a batch", request("POST", { "mcp-protocol-version": "2025-11-25" }, [{ jsonrpc: "2.0", id: 1, method: "tools/list" }])],
    ["a 2026-07-28 request", request("POST", { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" }, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: envelope } })],
    ["an envelope claim under a 2025 header", request("POST", { "mcp-protocol-version": "2025-11-25", "mcp-method": "tools/list" }, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: envelope } })],
    ["a malformed envelope", request("POST", { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" }, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } } })],
    ["a Mcp-Method mismatch", request("POST", { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call" }, { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: envelope } })],
    ["a modern version header without an envelope", request("POST", { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" }, { jsonrpc: "2.0", id: 1, method: "tools/list" })],
  ])("%s", (_what, req) => {
    const { era, wellFormed } = classify(req as never);
    expect(era === "legacy" ? "legacy" : wellFormed ? "modern" : "refused").toBe(sdkVerdict(req));
  });
});

describe("classify: hot 2026-07-28 requests answered from remembered envelopes agree with the SDK", () => {
  const clientInfo = { name: "agent", version: "1.0.0" };
  const hot = (meta: Record<string, unknown>, method = "tools/call", extra: Record<string, unknown> = {}) =>
    request("POST", { "mcp-protocol-version": "2026-07-28", "mcp-method": method }, { jsonrpc: "2.0", id: 3, method, params: { name: "x", arguments: {}, _meta: { ...envelope, ...meta } }, ...extra });
  test.each([
    ["the envelope alone", hot({})],
    ["with client info", hot({ "io.modelcontextprotocol/clientInfo": clientInfo })],
    ["with a log level", hot({ "io.modelcontextprotocol/logLevel": "debug" })],
    ["with an invalid log level", hot({ "io.modelcontextprotocol/logLevel": "loud" })],
    ["with client info of the wrong shape", hot({ "io.modelcontextprotocol/clientInfo": { name: 7 } })],
    ["with capabilities of the wrong shape", hot({ "io.modelcontextprotocol/clientCapabilities": "all" })],
    ["with trace context, valid", hot({ traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "a=b", baggage: "k=v" })],
    ["with trace context that is not W3C", hot({ traceparent: "garbage", tracestate: "" })],
    ["with a progress token", hot({ progressToken: 5 })],
    ["with a related-task key", hot({ "io.modelcontextprotocol/related-task": { taskId: 1 } })],
    ["a tools/list", hot({}, "tools/list")],
    ["with a key beside the JSON-RPC ones", hot({}, "tools/call", { extra: true })],
    ["with a result key", hot({}, "tools/call", { result: {} })],
    ["with a fractional id", { ...hot({}), body: { ...(hot({}).body as object), id: 1.5 } }],
  ])("%s", (_what, req) => {
    // Twice: the first answer may come from the SDK, the second from what it remembered.
    for (let i = 0; i < 2; i++) {
      const { era, wellFormed } = classify(req as never);
      expect(era === "legacy" ? "legacy" : wellFormed ? "modern" : "refused").toBe(sdkVerdict(req));
    }
  });
});

describe("callIdOf: the id a 2025 call is cancelled by", () => {
  const legacy = { era: "legacy", sessionId: "s1" } as unknown as McpCall;
  test("the ids 1 and \"1\", which one session may have in flight together, are two calls", () => {
    expect(callIdOf(legacy, 1)).not.toBe(callIdOf(legacy, "1"));
    expect(callIdOf(legacy, 1)).toBe(callIdOf(legacy, 1));
    expect(callIdOf(legacy, "1")).toBe(callIdOf(legacy, "1"));
  });

  test("an id holding a line break or non-ASCII is encoded into printable ASCII (it travels in a bus header)", () => {
    for (const id of ["x\r\nManifold-Caller: forged", "ü-€"]) expect(callIdOf(legacy, id)).toMatch(/^[\x20-\x7e]+$/);
  });
});

describe("classify: the remembered envelopes are bounded in bytes, not only in number", () => {
  test.each([false, true])("attack: 150 distinct envelopes of ~900 KB (each within the body limit) are not kept, chunked: %s", (chunked) => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const hot = (i: number) =>
      request(
        "POST",
        { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" },
        { jsonrpc: "2.0", id: i, method: "tools/list", params: { _meta: { ...envelope, "io.modelcontextprotocol/clientCapabilities": { experimental: { pad: { text: `${i}`.padEnd(900_000, "x") } } } } } },
        chunked,
      );
    gc();
    const before = process.memoryUsage().heapUsed;
    // Refused before the SDK's walk now (MAX_ENVELOPE_BYTES), framed either way; nothing is kept.
    for (let i = 0; i < 150; i++) expect(() => classify(hot(i) as never)).toThrow(/more than the 16384 accepted/);
    gc();
    // Before: every key was kept (up to 1,024 of them), +132 MiB here and ~900 MiB at the cap.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(16 * 1024 * 1024);
  });
});
