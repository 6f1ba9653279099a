import { ManifoldError } from "@manifold/contracts";
import { describe, expect, test } from "vitest";
import type { McpCall } from "../mcpCall.js";
import { toJsonRpcError } from "../jsonRpc.js";
import { consentResult } from "./consentAnswer.js";
import { consentRequired } from "./delegatedCredentials.js";

const consent = consentRequired("docs", { elicitationId: "e1", url: "https://gw.example/oauth/connect/abc", message: "Connect your account at 'docs'" });
const call = (era: "legacy" | "modern", capabilities: unknown) =>
  ({ era, body: { params: { _meta: { "io.modelcontextprotocol/clientCapabilities": capabilities } } } }) as unknown as McpCall;

describe("the consent answer per era", () => {
  test("the error is the 2025-11-25 URLElicitationRequiredError (-32042) with one URL elicitation", () => {
    expect(consent.code).toBe("upstream_authorization_required");
    expect(consent.data).toEqual({ upstream: "docs", elicitations: [{ mode: "url", elicitationId: "e1", url: "https://gw.example/oauth/connect/abc", message: "Connect your account at 'docs'" }] });
  });

  test("a 2026-07-28 client that takes URL elicitation gets input_required with the elicitation", () => {
    expect(JSON.parse(consentResult(call("modern", { elicitation: { url: {} } }), consent)!)).toEqual({
      resultType: "input_required",
      inputRequests: { "connect-docs": { method: "elicitation/create", params: { mode: "url", message: "Connect your account at 'docs'", url: "https://gw.example/oauth/connect/abc" } } },
    });
  });

  test.each([
    ["a 2025 client", call("legacy", { elicitation: { url: {} } }), consent],
    ["a modern client without the URL capability", call("modern", { elicitation: { form: {} } }), consent],
    ["a modern client without capabilities", call("modern", undefined), consent],
    ["another error", call("modern", { elicitation: { url: {} } }), new ManifoldError("forbidden", "no")],
  ])("%s gets the error itself", (_what, c, error) => {
    expect(consentResult(c, error)).toBeUndefined();
  });

  test("as an error: -32042 with the elicitation to a 2025 client; -32021 naming elicitation.url to a 2026-07-28 one, nothing of 2025's", () => {
    const legacy = toJsonRpcError(consent, "legacy");
    expect([legacy.code, legacy.data]).toEqual([-32042, { code: "upstream_authorization_required", ...consent.data }]);
    const modern = toJsonRpcError(consent, "modern");
    expect([modern.code, modern.data]).toEqual([-32021, { code: "upstream_authorization_required", upstream: "docs", requiredCapabilities: { elicitation: { url: {} } } }]);
    expect(modern.message).toBe(consent.message);
  });
});
