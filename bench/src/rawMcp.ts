import { Pool } from "undici";
import { headerList } from "./requestHeaders.js";

/**
 * A lean MCP client for load generation: raw JSON-RPC over keep-alive HTTP, accepting JSON
 * or SSE responses. The SDK client would itself saturate first and hide the server's cost.
 */
export class RawMcpSession {
  #sessionId: string | undefined;
  #protocolVersion = "2025-06-18";
  #nextId = 1;
  /** Every request's headers (`headerList`), the session's added once it has one. */
  #headers: readonly string[];

  constructor(
    readonly pool: Pool,
    readonly path: string,
    readonly extraHeaders: Record<string, string> = {},
  ) {
    this.#headers = headerList(extraHeaders, { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": this.#protocolVersion });
  }

  async initialize(): Promise<void> {
    const { headers } = await this.#post({
      method: "initialize",
      params: { protocolVersion: this.#protocolVersion, capabilities: {}, clientInfo: { name: "bench", version: "1" } },
    });
    const sid = headers["mcp-session-id"];
    this.#sessionId = Array.isArray(sid) ? sid[0] : sid;
    if (this.#sessionId) this.#headers = [...this.#headers, "mcp-session-id", this.#sessionId];
    await this.#send({ jsonrpc: "2.0", method: "notifications/initialized" });
  }

  async request(method: string, params: unknown): Promise<any> {
    const { body } = await this.#post({ method, params });
    // The error's data rides along (a consent answer carries its connect link there).
    if (body.error) throw Object.assign(new Error(`${method}: ${body.error.code} ${body.error.message}`), { data: body.error.data });
    return body.result;
  }

  /** Receives the whole response without decoding it: for timing how long the server takes to deliver it. */
  async requestBytes(method: string, params: unknown): Promise<number> {
    const message = { jsonrpc: "2.0", id: this.#nextId++, method, params };
    const res = await this.pool.request({ method: "POST", path: this.path, headers: [...this.#headers], body: JSON.stringify(message) });
    const bytes = (await res.body.arrayBuffer()).byteLength;
    if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode}`);
    return bytes;
  }

  async close(): Promise<void> {
    if (!this.#sessionId) return;
    await this.pool.request({ method: "DELETE", path: this.path, headers: [...this.#headers] }).then((r) => r.body.dump(), () => undefined);
  }

  async #send(message: unknown) {
    const res = await this.pool.request({ method: "POST", path: this.path, headers: [...this.#headers], body: JSON.stringify(message) });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, text };
  }

  async #post(message: { method: string; params: unknown }): Promise<{ headers: Record<string, string | string[] | undefined>; body: any }> {
    const { status, headers, text } = await this.#send({ jsonrpc: "2.0", id: this.#nextId++, ...message });
    if (status !== 200) throw new Error(`${message.method}: HTTP ${status} ${text.slice(0, 200)}`);
    const type = String(headers["content-type"] ?? "");
    if (!type.includes("text/event-stream")) return { headers, body: JSON.parse(text) };
    // SSE: the response is the last `data:` event that carries an id.
    const events = text.split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5)));
    return { headers, body: events.reverse().find((e) => e.id !== undefined) };
  }
}
