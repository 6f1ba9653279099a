import { CONSENT_ERROR_MODERN, EXPOSED_NAME_MAX, ManifoldError, cutText, jsonRpcCodeOf, withRetryHint, type Era, type ErrorCode } from "@manifold/contracts";
import type { McpCall } from "./mcpCall.js";
import { missingUrlElicitation, takesUrlElicitation } from "./vault/consentAnswer.js";

/**
 * An error the SDK's protocol layer sends as-is: it copies `code`, `message` and `data`
 * into the JSON-RPC response (the SDK's McpError would prefix the message).
 */
export class JsonRpcError extends Error {
  override readonly name = "JsonRpcError";
  constructor(
    readonly code: number,
    message: string,
    readonly data?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/**
 * The one place where a failure becomes a JSON-RPC error for an MCP client, in the code of the
 * client's era (`jsonRpcCodeOf`); `data.code` names it alike in both. `call`, when given, is the
 * 2026-07-28 request whose declared capabilities decide the consent error's form.
 */
export function toJsonRpcError(error: unknown, era: Era, call?: McpCall): JsonRpcError {
  if (error instanceof JsonRpcError) return error;
  if (error instanceof ManifoldError) {
    if (era === "modern" && error.code === "upstream_authorization_required") {
      // A client that declared elicitation.url gets the consent elicitation to show (not -32021 naming what it declared); one that did not, -32021.
      if (call !== undefined && takesUrlElicitation(call)) return new JsonRpcError(CONSENT_ERROR_MODERN, error.message, { code: error.code, ...error.data });
      return new JsonRpcError(jsonRpcCodeOf(error.code, era), error.message, { code: error.code, ...missingUrlElicitation(error.data) });
    }
    return new JsonRpcError(jsonRpcCodeOf(error.code, era), error.message, { code: error.code, ...withRetryHint(error.code, error.data) });
  }
  return new JsonRpcError(jsonRpcCodeOf("internal_error", era), "internal error", { code: "internal_error" });
}

/** A JSON-RPC error envelope for failures answered before any MCP session handles the request, in the code of the client's era. */
export function errorEnvelope(code: ErrorCode, message: string, era: Era, id: string | number | null = null) {
  return { jsonrpc: "2.0" as const, id, error: { code: jsonRpcCodeOf(code, era), message, data: { code } as Record<string, unknown> } };
}

/** The caller's name is echoed cut to what a tool name can be (64 characters): an answer is not an amplifier. */
export const unknownTool = (virtualServer: string, name: string) => {
  const shown = cutText(name, EXPOSED_NAME_MAX);
  return new JsonRpcError(-32602, `unknown tool '${shown}': virtual server '${virtualServer}' exposes no tool of that name`, { code: "unknown_tool", tool: shown });
};
