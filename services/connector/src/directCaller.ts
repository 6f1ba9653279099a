import { McpError, ErrorCode as McpErrorCode, type Progress } from "@modelcontextprotocol/sdk/types.js";
import type { Pool } from "undici";
import { traceHeaders } from "@manifold/telemetry";

export interface DirectCallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** When set, the upstream is asked for progress and each notification is handed here. */
  onprogress?: (progress: Progress) => void;
}

/** An SSE `data:` line of a JSON-RPC message; everything else in the stream is framing. */
const dataLines = (chunk: string) => chunk.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim());

/**
 * tools/call on an established Streamable HTTP session without the SDK's per-request
 * machinery (web streams, fetch, schema validation): one keep-alive POST of the JSON-RPC
 * request, whose `params` the gateway already serialized, and the `result` back as JSON
 * text. JSON and SSE responses are both handled; the session itself (initialize,
 * notifications, listing) stays with the SDK client.
 */
export class DirectCaller {
  #nextId = 0;
  readonly #path: string;
  readonly #headers: Record<string, string>;

  constructor(
    readonly pool: Pool,
    url: URL,
    headers: Readonly<Record<string, string>>,
    sessionId: string | undefined,
    protocolVersion: string | undefined,
  ) {
    this.#path = `${url.pathname}${url.search}`;
    this.#headers = {
      ...headers,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(sessionId ? { "mcp-session-id": sessionId } : {}),
      ...(protocolVersion ? { "mcp-protocol-version": protocolVersion } : {}),
    };
  }

  /** `paramsJson` is the serialized `params` of tools/call; resolves with the serialized result. */
  async callTool(paramsJson: string, options: DirectCallOptions): Promise<string> {
    // String ids cannot collide with the SDK client's numeric ids on the same session.
    const id = `m${++this.#nextId}`;
    let params = paramsJson;
    if (options.onprogress) {
      const parsed = JSON.parse(paramsJson) as { _meta?: Record<string, unknown> };
      params = JSON.stringify({ ...parsed, _meta: { ...parsed._meta, progressToken: id } });
    }
    const body = `{"jsonrpc":"2.0","id":"${id}","method":"tools/call","params":${params}}`;
    const cancel = () => void this.#notifyCancelled(id);
    options.signal?.addEventListener("abort", cancel, { once: true });
    let response;
    try {
      const trace = traceHeaders();
      response = await this.pool.request({
        method: "POST",
        path: this.#path,
        // The upstream joins the call's trace when tracing is on.
        headers: trace.traceparent ? { ...this.#headers, ...trace } : this.#headers,
        body,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      options.signal?.removeEventListener("abort", cancel);
      throw this.#failed(id, error, options.timeoutMs);
    }
    const type = String(response.headers["content-type"] ?? "");
    if (response.statusCode !== 200) {
      const text = await response.body.text().catch(() => "");
      // 404: the upstream forgot the session; the caller reconnects.
      throw new Error(`upstream answered HTTP ${response.statusCode}${text ? `: ${text.slice(0, 200)}` : ""}`);
    }
    try {
      if (!type.includes("text/event-stream")) return this.#result(JSON.parse(await response.body.text()));
      let buffer = "";
      for await (const chunk of response.body) {
        buffer += chunk.toString();
        const end = buffer.lastIndexOf("\n\n");
        if (end < 0) continue;
        const complete = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const data of dataLines(complete)) {
          if (!data) continue;
          const message = JSON.parse(data) as { id?: unknown; method?: string; params?: Progress & { progressToken?: unknown }; result?: unknown; error?: { code: number; message: string; data?: unknown } };
          if (message.id === id) {
            response.body.destroy();
            return this.#result(message);
          }
          if (message.method === "notifications/progress" && message.params?.progressToken === id && options.onprogress) {
            const { progressToken: _token, ...progress } = message.params;
            options.onprogress(progress);
          }
        }
      }
      throw new Error("upstream closed the response stream without answering");
    } catch (error) {
      if (error instanceof McpError) throw error;
      throw this.#failed(id, error, options.timeoutMs);
    } finally {
      options.signal?.removeEventListener("abort", cancel);
    }
  }

  /** Aborting the POST closes its connection; the upstream also hears why, as the protocol asks. */
  async #notifyCancelled(id: string): Promise<void> {
    const body = JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "cancelled by the client" } });
    await this.pool
      .request({ method: "POST", path: this.#path, headers: this.#headers, body })
      .then((r) => r.body.dump(), () => undefined);
  }

  #result(message: { result?: unknown; error?: { code: number; message: string; data?: unknown } }): string {
    if (message.error) throw new McpError(message.error.code, message.error.message, message.error.data);
    return JSON.stringify(message.result);
  }

  /** A timed-out request is cancelled upstream too, so the upstream stops working on it. */
  #failed(id: string, error: unknown, timeoutMs: number): Error {
    const code = (error as { code?: string }).code;
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      void this.#notifyCancelled(id);
      return new McpError(McpErrorCode.RequestTimeout, `no answer within ${timeoutMs} ms`);
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}
