import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { request } from "node:http";
import { Agent, fetch as undiciFetch } from "undici";

export type DisposableClient = Client & AsyncDisposable;

/** An SDK client connected to `transport`, closed when disposed. */
export async function connectClient(transport: Transport, name = "manifold-test"): Promise<DisposableClient> {
  const client = new Client({ name, version: "1.0.0" }, { capabilities: {} });
  await client.connect(transport);
  return Object.assign(client, { [Symbol.asyncDispose]: () => client.close() });
}

export const connectHttp = (url: string, name?: string) => connectClient(new StreamableHTTPClientTransport(new URL(url)), name);

/** `connectHttp` as a consumer: its API key (or any bearer token) on every request. */
export const connectWithKey = (url: string, key: string, name?: string) =>
  connectClient(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }), name);

/**
 * An SDK client without credentials whose connections leave from `localAddress` (any 127.x.y.z
 * reaches a loopback listener): to the gateway, a client at another address than the default 127.0.0.1.
 */
export function connectFrom(url: string, localAddress: string, name?: string): Promise<DisposableClient> {
  const dispatcher = new Agent({ localAddress });
  const fetch = ((input: string | URL, init?: RequestInit) => undiciFetch(input, { ...(init as object), dispatcher })) as unknown as typeof globalThis.fetch;
  return connectClient(new StreamableHTTPClientTransport(new URL(url), { fetch }), name).then((client) =>
    Object.assign(client, { [Symbol.asyncDispose]: async () => (await client.close(), await dispatcher.close()) }),
  );
}

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 5_000, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`condition not met within ${timeoutMs} ms${lastError instanceof Error ? `: ${lastError.message}` : ""}`);
}

/**
 * An `initialize` POSTed raw with `Authorization: Bearer <token>`, from the client address
 * `localAddress` when given (any 127.x.y.z reaches a loopback listener: another caller's address
 * than the default 127.0.0.1): the status and body the gateway answers.
 */
export function initializeWith(url: string, token: string, localAddress?: string, extraHeaders: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } });
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}`, ...extraHeaders };
    const req = request(url, { method: "POST", headers, ...(localAddress && { localAddress }) }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A tool call's outcome as one string: "ok", or "error: " and what the caller was told (an error result's content or the request's error). */
export function callAnswer(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  return client.callTool({ name, arguments: args }).then(
    (result) => (result.isError ? `error: ${JSON.stringify(result.content)}` : "ok"),
    (error: Error) => `error: ${error.message}`,
  );
}
