/** The MCP revision the 2026 agents of the end-to-end suites pin. */
export const MODERN = "2026-07-28";
export const TASKS_EXTENSION = "io.modelcontextprotocol/tasks";

export interface RpcAnswer<T = any> {
  status: number;
  headers: Headers;
  /** Every message of the answer's SSE stream, in order (the answer alone when it was JSON). */
  messages: Record<string, any>[];
  result?: T;
  error?: { code: number; message: string; data?: any };
}

export interface ModernPostOptions {
  /** Declared in the request's `_meta` (the revision has no `initialize`). */
  capabilities?: Record<string, unknown>;
  /** Sent as they are; a header given as "" is left out. */
  headers?: Record<string, string>;
}

/**
 * One raw 2026-07-28 JSON-RPC POST, with the `_meta` envelope and the `Mcp-Method`/`Mcp-Name`
 * headers the revision requires, for what the 2.4.0 client does not let a test send or read (a
 * `resultType: "task"` answer, a forged `requestState`). The answer is read as JSON or as the
 * last message of its SSE stream.
 */
export async function modernPost<T = any>(url: string, method: string, params: Record<string, unknown> = {}, options: ModernPostOptions = {}): Promise<RpcAnswer<T>> {
  // Mcp-Name mirrors the body's tool or prompt name, resource URI, or (tasks extension) task id.
  const mirrored = [params.name, params.uri, params.taskId].find((v) => typeof v === "string") as string | undefined;
  const name: Record<string, string> = mirrored === undefined ? {} : { "mcp-name": mirrored };
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": method, ...name, ...options.headers };
  const meta = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": { name: "raw-agent", version: "1.0.0" },
    "io.modelcontextprotocol/clientCapabilities": options.capabilities ?? {},
    ...(params._meta as object | undefined),
  };
  const res = await fetch(url, {
    method: "POST",
    headers: Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== "")),
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: meta } }),
  });
  const text = await res.text();
  const messages = (text.trimStart().startsWith("{") ? [text] : text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5))).map((m) => JSON.parse(m) as Record<string, any>);
  const body = messages.at(-1) as { result?: T; error?: RpcAnswer["error"] };
  return { status: res.status, headers: res.headers, messages, ...body };
}
