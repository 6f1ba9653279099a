import type { InteractionCapabilities } from "@manifold/contracts";

export const MODERN = "2026-07-28";
export const TASKS = "io.modelcontextprotocol/tasks";

/** What a raw 2026-07-28 request answered: its JSON-RPC `result` or `error`, and the HTTP status. */
export interface ModernAnswer<T = Record<string, any>> {
  status: number;
  /** Every message of the answer's SSE stream in order (notifications, then the answer); the answer alone when it was JSON. */
  messages: Record<string, any>[];
  result?: T;
  error?: { code: number; message: string; data?: any };
}

/** The capabilities a request declares: the tasks extension (unless `tasks: false`) and what the agent may be asked. */
export const declaring = (asked: InteractionCapabilities = {}, tasks = true): Record<string, unknown> => ({ ...asked, ...(tasks ? { extensions: { [TASKS]: {} } } : {}) });

/**
 * One 2026-07-28 request as raw JSON-RPC over HTTP, with the `_meta` envelope and the standard
 * headers (`Mcp-Name` mirrors a call's or prompt's `name`, a read's `uri` or a task request's `taskId`). Raw because the
 * 2.4.0 client refuses `resultType: "task"` answers and lifts `inputResponses`.
 */
export async function modernRequest<T = Record<string, any>>(url: string, bearer: string | undefined, method: string, params: Record<string, unknown>, capabilities: Record<string, unknown> = declaring()): Promise<ModernAnswer<T>> {
  const name = [params.name, params.uri, params.taskId].find((value): value is string => typeof value === "string");
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      // None: a request without credentials.
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
      "mcp-protocol-version": MODERN,
      "mcp-method": method,
      ...(name !== undefined ? { "mcp-name": name } : {}),
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          "io.modelcontextprotocol/protocolVersion": MODERN,
          "io.modelcontextprotocol/clientInfo": { name: "raw-agent", version: "1" },
          "io.modelcontextprotocol/clientCapabilities": capabilities,
          // The request's own (a progress token, a log level).
          ...(params._meta as Record<string, unknown> | undefined),
        },
      },
    }),
  });
  const body = await res.text();
  const messages = (body.startsWith("{") ? [body] : body.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5))).map((m) => JSON.parse(m) as Record<string, any>);
  return { status: res.status, messages, ...(messages.at(-1) as { result?: T; error?: ModernAnswer["error"] }) };
}
