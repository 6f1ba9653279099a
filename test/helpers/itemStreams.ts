import { request } from "node:http";
import { expect } from "vitest";

/** A 2026-07-28 request envelope with no capabilities, for raw requests. */
export const MODERN_META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "m", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

/** A raw session of `key` at `url` (2025-11-25 unless `version` says): `send` posts one message and returns the JSON-RPC answer (JSON or the last SSE message); `send.headers` are its requests' headers. */
export async function rawSession(url: string, key: string, version = "2025-11-25") {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` };
  const init = await fetch(url, {
    method: "POST",
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: version, capabilities: {}, clientInfo: { name: "a", version: "1" } } }),
  });
  const answer = await init.text();
  const sid = init.headers.get("mcp-session-id")!;
  expect(sid, `initialize answered ${init.status} ${answer.slice(0, 300)}`).toBeTruthy();
  Object.assign(headers, { "mcp-session-id": sid, "mcp-protocol-version": version });
  await (await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  let id = 1;
  const send = async (method: string, params: Record<string, unknown>) => {
    const res = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: id++, method, params }) });
    const text = await res.text();
    const last = JSON.parse(text.startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).at(-1)!.slice(5));
    return { status: res.status, result: last.result, error: last.error };
  };
  return Object.assign(send, { headers });
}

/** Opens a 2026-07-28 listen stream for `uris`; returns the HTTP status and its first message (the acknowledgement or the refusal), then closes it. */
export async function listenOnce(url: string, key: string, uris: string[]) {
  const closing = new AbortController();
  const res = await fetch(url, {
    method: "POST",
    signal: closing.signal,
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { _meta: MODERN_META, notifications: { resourceSubscriptions: uris } } }),
  });
  const reader = res.body!.getReader();
  let text = "";
  while (!/\n\n|^\{[\s\S]*\}$/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString();
  }
  closing.abort();
  const data = text.startsWith("{") ? text : text.split("\n").find((l) => l.startsWith("data:"))!.slice(5);
  return { status: res.status, message: JSON.parse(data) as Record<string, any> };
}

/** A POST on a connection of its own; resolves with its status and body, or status 0 and why not within `timeoutMs`. */
export function postAlone(at: string, headers: Record<string, string>, body: unknown, timeoutMs: number) {
  return new Promise<{ status: number; text: string }>((resolve) => {
    const req = request(at, { method: "POST", agent: false, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => resolve({ status: res.statusCode!, text }));
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy();
      resolve({ status: 0, text: "no answer" });
    });
    req.on("error", (error: NodeJS.ErrnoException) => resolve({ status: 0, text: error.code ?? String(error) }));
    req.end(JSON.stringify(body));
  });
}
