import { describe, expect, test } from "vitest";
import { upstreamParams } from "./toolCalls.js";

describe("the params a tools/call takes upstream", () => {
  test("the upstream's own tool name and the keys both SDKs keep, whichever lane served the request", () => {
    const params = { name: "exposed_abc123", arguments: { message: "hi" }, cursor: "x", foo: 1, task: { ttl: 1000 } } as never;
    // Before: the fast path passed `cursor` and `foo` on, which the SDK lane (its schema) dropped.
    expect(upstreamParams(params, "echo")).toEqual({ name: "echo", arguments: { message: "hi" }, task: { ttl: 1000 } });
    expect(JSON.stringify(upstreamParams({ name: "exposed_abc123" } as never, "echo"))).toBe('{"name":"echo"}');
  });

  test("_meta goes on without the agent's hop (envelope, trace context), and not at all when nothing is left", () => {
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", traceparent: "00-x", progressToken: "p" };
    expect(upstreamParams({ name: "e", arguments: {}, _meta: meta } as never, "echo")).toEqual({ name: "echo", arguments: {}, _meta: { progressToken: "p" } });
    expect(upstreamParams({ name: "e", _meta: { traceparent: "00-x" } } as never, "echo")).toEqual({ name: "echo" });
  });
});
