import { SdkErrorCode, SdkHttpError } from "@modelcontextprotocol/client";

const posting = (status: number, reason: string) => new SdkHttpError(SdkErrorCode.ClientHttpNotImplemented, `Error POSTing to endpoint: ${reason}`, { status, statusText: "" });
import { describe, expect, test } from "vitest";
import { isSessionNotFound, SessionNotFound, sessionRefused } from "./sessionExpiry.js";

describe("a forgotten upstream session", () => {
  test.each([
    [404, '{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}', true],
    [404, "", true],
    [400, '{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}', true],
    [400, '{"error":{"code":-32000,"message":"Bad Request: Unsupported protocol version: 1999-01-01"}}', false],
    [400, "", false],
    [500, "session", false],
    [401, "Session expired, log in again", false],
  ])("HTTP %i %j: refused for its session: %s", (status, body, expected) => {
    expect(sessionRefused(status, body)).toBe(expected);
  });

  test("is recognised on the direct path and through the SDK client", () => {
    expect(isSessionNotFound(new SessionNotFound("upstream answered HTTP 404"))).toBe(true);
    expect(isSessionNotFound(posting(404, "Session not found"))).toBe(true);
    expect(isSessionNotFound(posting(400, "No valid session ID provided"))).toBe(true);
    expect(isSessionNotFound(posting(400, "Parse error"))).toBe(false);
    expect(isSessionNotFound(posting(415, "Unexpected content type"))).toBe(false);
    expect(isSessionNotFound(new Error("upstream answered HTTP 404"))).toBe(false);
  });
});
