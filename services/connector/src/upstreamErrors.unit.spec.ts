import { ManifoldError } from "@manifold/contracts";
import { ProtocolError, ProtocolErrorCode, SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, test } from "vitest";
import { UpstreamHttpStatus, closedOneCall, dropsSession, isHealthFailure, mapUpstreamError, mayBeOneRequests, safeReason, saysUnreachable } from "./upstreamErrors.js";

const SECRET = "s3cr3t-7781";
const thrown = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("did not throw");
};

describe("the sanitising boundary", () => {
  test.each([
    ["fetch's Headers with a NUL", () => thrown(() => new Headers({ a: `Bearer ${SECRET}\u0000` }))],
    ["fetch's Headers with a line break", () => thrown(() => new Headers({ a: `Bearer ${SECRET}\nx` }))],
    ["spawn with a NUL in the environment", () => thrown(() => spawn("true", [], { env: { A: `${SECRET}\u0000` } }))],
    ["a URL with credentials", () => new TypeError(`Request cannot be constructed from a URL that includes credentials: http://u:${SECRET}@h/`)],
    ["user info in any message", () => new Error(`connect ECONNREFUSED http://admin:${SECRET}@10.0.0.1:80/mcp`)],
  ])("withholds the value of %s", (_what, make) => {
    const reason = safeReason(make());
    expect(reason).not.toContain(SECRET);
    expect(mapUpstreamError(make(), "upstream 'u'", 1000).message).not.toContain(SECRET);
  });

  test("the JSON parser's excerpt of an answer it refused is not quoted, short or long", () => {
    for (const body of ["sk-live-0123456789abcdef is not a key this server knows", "sk-live-01"]) {
      const parsed = (() => {
        try {
          return JSON.parse(body) as unknown;
        } catch (error) {
          return error;
        }
      })();
      expect(safeReason(parsed)).toBe("an answer that is not valid JSON (text withheld)");
    }
  });

  test("keeps ordinary reasons, bounded and without control characters", () => {
    expect(safeReason(new Error("connect ECONNREFUSED 127.0.0.1:9"))).toBe("connect ECONNREFUSED 127.0.0.1:9");
    expect(safeReason(new Error(`a\u0000b\r\nc${"x".repeat(1_000)}`)).length).toBeLessThanOrEqual(501);
    expect(safeReason(new ManifoldError("upstream_unavailable", "ours"))).toBe("ours");
  });

  test("a failed fetch names its system error (undici's own message is only 'fetch failed'), and nothing else of its cause", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const failed = await fetch(`http://127.0.0.1:${port}/mcp`).then(() => undefined, (error: unknown) => error);
    expect(safeReason(failed)).toBe("fetch failed (ECONNREFUSED)");
    expect(safeReason(new Error("Version negotiation probe failed: fetch failed", { cause: failed }))).toBe("Version negotiation probe failed: fetch failed (ECONNREFUSED)");
    expect(safeReason(new Error("connect ECONNREFUSED 127.0.0.1:9", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) }))).toBe("connect ECONNREFUSED 127.0.0.1:9");
  });

  test("arguments the upstream rejects (-32602) are the caller's error, never a health failure", () => {
    const mapped = mapUpstreamError(new ProtocolError(ProtocolErrorCode.InvalidParams, "bad arguments"), "upstream 'u'", 1000);
    expect(mapped.code).toBe("upstream_error");
    expect(isHealthFailure(mapped)).toBe(false);
  });

  test("pushed back: a 429 is upstream_rate_limited and a 503 upstream_unavailable, both retryable with their Retry-After, neither dropping a session", () => {
    const limited = mapUpstreamError(new UpstreamHttpStatus(429, 7_000), "upstream 'u'", 1000);
    expect([limited.code, limited.retryable, limited.data]).toEqual(["upstream_rate_limited", true, { httpStatus: 429, retryAfterMs: 7_000 }]);
    const busy = mapUpstreamError(new UpstreamHttpStatus(503, 0), "upstream 'u'", 1000);
    expect([busy.code, busy.retryable, busy.data]).toEqual(["upstream_unavailable", true, { httpStatus: 503, retryAfterMs: 0 }]);
    // Without a Retry-After, none is made up; the SDK's own error for a 429 maps alike, its page cut.
    const sdk = mapUpstreamError(new Error(`Error POSTing to endpoint (HTTP 429): slow down ${SECRET}`), "upstream 'u'", 1000);
    expect([sdk.code, sdk.data, sdk.message.includes(SECRET)]).toEqual(["upstream_rate_limited", { httpStatus: 429 }, false]);
    expect([limited, busy].map(isHealthFailure)).toEqual([true, true]);
    expect([limited, busy].map(dropsSession)).toEqual([false, false]);
    // A 502 may be one request's (nginx's answer to a connection the upstream cut): it drops no session
    // of itself; a ping so answered does (`saysUnreachable`). A 401 (the credentials) still drops it.
    const badGateway = mapUpstreamError(new UpstreamHttpStatus(502), "upstream 'u'", 1000);
    expect([dropsSession(badGateway), mayBeOneRequests(badGateway), saysUnreachable(badGateway)]).toEqual([false, true, true]);
    expect(dropsSession(mapUpstreamError(new UpstreamHttpStatus(401), "upstream 'u'", 1000))).toBe(true);
    expect(saysUnreachable(busy)).toBe(false);
  });

  test("the client's timeout and closed connection are health failures; an upstream's JSON-RPC error keeps its code", () => {
    expect(mapUpstreamError(new SdkError(SdkErrorCode.RequestTimeout, "t"), "u", 5).code).toBe("upstream_timeout");
    expect(mapUpstreamError(new SdkError(SdkErrorCode.ConnectionClosed, "c"), "u", 5).code).toBe("upstream_unavailable");
    expect(mapUpstreamError(new ProtocolError(-32010, "no", { x: 1 }), "u", 5).data).toEqual({ upstreamCode: -32010, upstreamData: { x: 1 } });
  });

  test("one request's connection closed under it is that request's failure: retryable, counted (as the caller's), no session dropped; a refused connection still drops it", () => {
    const systemError = (message: string, code: string) => Object.assign(new Error(message), { code });
    // undici's own error (the direct caller), and fetch's wrapping it (the SDK's transports).
    const ended = systemError("other side closed", "UND_ERR_SOCKET");
    const reset = new TypeError("fetch failed", { cause: systemError("read ECONNRESET", "ECONNRESET") });
    for (const [error, code] of [[ended, "UND_ERR_SOCKET"], [reset, "ECONNRESET"]] as const) {
      const closed = mapUpstreamError(error, "upstream 'u'", 1000);
      expect([closed.code, closed.retryable, closed.data, closed.message]).toEqual(["upstream_unavailable", true, { reason: "connection_closed" }, `upstream 'u' closed the connection of this request before answering it (${code})`]);
      expect([isHealthFailure(closed), closedOneCall(closed), dropsSession(closed)]).toEqual([true, true, false]);
    }
    const refused = mapUpstreamError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" }), "upstream 'u'", 1000);
    expect([refused.code, closedOneCall(refused), dropsSession(refused)]).toEqual(["upstream_unavailable", false, true]);
  });

  test("attack: an upstream's error message of 200 KB with control characters reaches others as one bounded line", () => {
    const hostile = `${"\u001b[2J\r\nforged log line\n".repeat(10_000)}`;
    const mapped = mapUpstreamError(new ProtocolError(-32000, hostile), "upstream 'u'", 5);
    // Before: all of it, terminal escapes and line breaks included, in the agent's error, logs and spans.
    expect(mapped.message.length).toBeLessThan(1_100);
    expect([...mapped.message].filter((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)).toEqual([]);
    expect(mapped.message.startsWith("upstream 'u' returned an error: ")).toBe(true);
  });

  test("an upstream's -32021 naming the tasks extension is the agent's own -32021; any other -32021 stays the upstream's error", () => {
    const tasks = mapUpstreamError(new ProtocolError(-32021, "Missing required client capability", { requiredCapabilities: { extensions: { "io.modelcontextprotocol/tasks": {} } } }), "upstream 'u'", 5);
    expect(tasks.code).toBe("missing_client_capability");
    expect(tasks.data).toEqual({ requiredCapabilities: { extensions: { "io.modelcontextprotocol/tasks": {} } } });
    expect(isHealthFailure(tasks)).toBe(false);
    const other = mapUpstreamError(new ProtocolError(-32021, "Missing required client capability", { requiredCapabilities: { sampling: {} } }), "upstream 'u'", 5);
    expect(other.code).toBe("upstream_error");
  });
});
