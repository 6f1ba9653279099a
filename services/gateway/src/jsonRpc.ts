import { EXPOSED_NAME_MAX, ErrorCode, ManifoldError, withRetryHint } from "@manifold/contracts";

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

/** The one place where a failure becomes a JSON-RPC error for an MCP client. */
export function toJsonRpcError(error: unknown): JsonRpcError {
  if (error instanceof JsonRpcError) return error;
  if (error instanceof ManifoldError) {
    return new JsonRpcError(ErrorCode[error.code].jsonRpc, error.message, { code: error.code, ...withRetryHint(error.code, error.data) });
  }
  return new JsonRpcError(ErrorCode.internal_error.jsonRpc, "internal error", { code: "internal_error" });
}

/** A JSON-RPC error envelope for failures answered before any MCP session handles the request. */
export function errorEnvelope(code: ErrorCode, message: string, id: string | number | null = null) {
  return { jsonrpc: "2.0" as const, id, error: { code: ErrorCode[code].jsonRpc, message, data: { code } as Record<string, unknown> } };
}

/** The caller's name is echoed cut to what a tool name can be (64 characters): an answer is not an amplifier. */
export const unknownTool = (virtualServer: string, name: string) => {
  const shown = name.length > EXPOSED_NAME_MAX ? `${name.slice(0, EXPOSED_NAME_MAX)}…` : name;
  return new JsonRpcError(-32602, `unknown tool '${shown}': virtual server '${virtualServer}' exposes no tool of that name`, { code: "unknown_tool", tool: shown });
};
