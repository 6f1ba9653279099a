import { Pool } from "undici";
import { headerList } from "./requestHeaders.js";

export const MODERN_VERSION = "2026-07-28";
const CLIENT_META = {
  "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
  "io.modelcontextprotocol/clientInfo": { name: "bench", version: "1" },
  "io.modelcontextprotocol/clientCapabilities": {},
};

/** `Mcp-Name` as the transport asks: plain when it is safe header text, else the Base64 sentinel. */
export const mcpNameHeader = (name: string) =>
  /^[\x21-\x7e]([\x20-\x7e\t]*[\x21-\x7e])?$/.test(name) ? name : `=?base64?${Buffer.from(name, "utf8").toString("base64")}?=`;

/**
 * A lean 2026-07-28 client for load generation, beside `RawMcpSession` (2025): no initialize and
 * no session; every request carries the protocol version, client info and capabilities in
 * `_meta` and the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers
 * (basic/transports/streamable-http.mdx). Accepts JSON or SSE answers.
 */
export class RawModernClient {
  #nextId = 1;
  readonly #headers: readonly string[];

  constructor(
    readonly pool: Pool,
    readonly path: string,
    readonly extraHeaders: Record<string, string> = {},
  ) {
    this.#headers = headerList(extraHeaders, { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN_VERSION });
  }

  /** The era's handshake is none; `server/discover` once proves the endpoint speaks it. */
  async initialize(): Promise<void> {
    const result = await this.request("server/discover", {});
    if (!Array.isArray(result.supportedVersions) || !result.supportedVersions.includes(MODERN_VERSION)) {
      throw new Error(`server/discover: ${MODERN_VERSION} is not among ${JSON.stringify(result.supportedVersions)}`);
    }
  }

  async request(method: string, params: Record<string, unknown>): Promise<any> {
    const res = await this.#send(method, params);
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
    const body = String(res.headers["content-type"] ?? "").includes("text/event-stream")
      ? text.split("\n").filter((l) => l.startsWith("data:")).map((l) => JSON.parse(l.slice(5))).reverse().find((e) => e.id !== undefined)
      : JSON.parse(text);
    if (body.error) throw new Error(`${method}: ${body.error.code} ${body.error.message}`);
    if (body.result?.resultType !== undefined && body.result.resultType !== "complete") throw new Error(`${method}: resultType ${body.result.resultType}`);
    return body.result;
  }

  /** Receives the whole response without decoding it. */
  async requestBytes(method: string, params: Record<string, unknown>): Promise<number> {
    const res = await this.#send(method, params);
    const bytes = (await res.body.arrayBuffer()).byteLength;
    if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode}`);
    return bytes;
  }

  /** Nothing to end: the era has no sessions. */
  async close(): Promise<void> {}

  #send(method: string, params: Record<string, unknown>) {
    const headers = [...this.#headers, "mcp-method", method];
    const name = typeof params.name === "string" ? params.name : typeof params.uri === "string" ? params.uri : undefined;
    if (name !== undefined) headers.push("mcp-name", mcpNameHeader(name));
    const body = JSON.stringify({ jsonrpc: "2.0", id: this.#nextId++, method, params: withEnvelope(params) });
    return this.pool.request({ method: "POST", path: this.path, headers, body });
  }
}

/**
 * `{ ...params, _meta: { ...params._meta, ...CLIENT_META } }`, by assignment: a spread object given
 * one more key is V8's slow case on every request (see `headerList`). Same keys in the same order.
 */
function withEnvelope(params: Record<string, unknown>): Record<string, unknown> {
  const sent: Record<string, unknown> = {};
  for (const key of Object.keys(params)) sent[key] = params[key];
  sent._meta = params._meta === undefined ? CLIENT_META : Object.assign({}, params._meta, CLIENT_META);
  return sent;
}
