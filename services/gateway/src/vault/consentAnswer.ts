import { ManifoldError, isRecord } from "@manifold/contracts";
import type { McpCall } from "../mcpCall.js";

const CAPABILITIES = "io.modelcontextprotocol/clientCapabilities";

/** Whether a 2026-07-28 request declares that its client handles URL-mode elicitation. */
export function takesUrlElicitation(call: McpCall): boolean {
  const meta = (call.body as { params?: { _meta?: unknown } } | undefined)?.params?._meta;
  const capabilities = isRecord(meta) ? meta[CAPABILITIES] : undefined;
  const elicitation = isRecord(capabilities) ? capabilities.elicitation : undefined;
  return isRecord(elicitation) && isRecord(elicitation.url);
}

/**
 * The 2026-07-28 form of `upstream_authorization_required`, for a client that takes URL-mode
 * elicitation: an `input_required` result (multi round-trip requests) whose one input request
 * is the URL elicitation; the client opens it and retries the call. Only for the methods MRTR
 * allows it on (tools/call, prompts/get, resources/read); on others that client gets the error
 * carrying the elicitation (`toJsonRpcError`, `CONSENT_ERROR_MODERN`). 2025 clients get the error
 * itself (-32042, the elicitation in its data); modern ones without the capability, the error
 * naming it (`missingUrlElicitation`).
 * Returns the result's JSON text, or undefined when the error is to be sent as it is.
 */
export function consentResult(call: McpCall, error: unknown): string | undefined {
  if (call.era !== "modern" || !(error instanceof ManifoldError) || error.code !== "upstream_authorization_required" || !takesUrlElicitation(call)) return undefined;
  const [elicitation] = error.data?.elicitations as { elicitationId: string; url: string; message: string }[];
  return JSON.stringify({
    resultType: "input_required",
    inputRequests: {
      [`connect-${String(error.data?.upstream)}`]: { method: "elicitation/create", params: { mode: "url", message: elicitation!.message, url: elicitation!.url } },
    },
  });
}

/**
 * The data of `upstream_authorization_required` for a 2026-07-28 client that does not take URL-mode
 * elicitation. That revision MUST NOT emit 2025-11-25's -32042, and a request needing a capability
 * the client did not declare MUST be answered `MissingRequiredClientCapabilityError` (-32021, HTTP
 * 400) whose `data.requiredCapabilities` lists it (basic/index.mdx): so it is, with the upstream
 * named. The 2025 elicitation (`elicitations`, its `elicitationId`) is not sent; the message still
 * says where the user connects.
 */
export const missingUrlElicitation = (data: Record<string, unknown> | undefined): Record<string, unknown> => ({
  upstream: data?.upstream,
  requiredCapabilities: { elicitation: { url: {} } },
});
