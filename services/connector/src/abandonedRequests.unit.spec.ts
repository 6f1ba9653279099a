import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from "@modelcontextprotocol/client";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { AbandonedRequests, trailingRequestId } from "./abandonedRequests.js";

const ACCEPT_MS = 300;

describe("trailingRequestId", () => {
  // As the SDK's protocol layer writes a request: `{ ...request, jsonrpc, id }`.
  const sdkRequest = (id: number | string, params: unknown) => JSON.stringify({ ...{ method: "tools/call", params }, jsonrpc: "2.0", id });

  test.each([
    ["a numeric id", sdkRequest(7, { name: "x" }), "7"],
    ["a string id", sdkRequest("r-1", {}), '"r-1"'],
    ["arguments of a megabyte, read from the tail", sdkRequest(12, { arguments: { blob: "x".repeat(1 << 20) } }), "12"],
    ["a nested id in the arguments", sdkRequest(3, { arguments: { id: 99 } }), "3"],
  ])("%s", (_, body, id) => expect(trailingRequestId(body)).toBe(id));

  test.each([
    ["a notification", JSON.stringify({ method: "notifications/cancelled", params: { requestId: 4 }, jsonrpc: "2.0" })],
    ["a notification whose params end with an id", JSON.stringify({ method: "notifications/x", params: { id: 4 } })],
    ["an answer", JSON.stringify({ result: {}, jsonrpc: "2.0", id: 4 })],
    ["a key that only ends like one", '{"method":"x","a,\\"id":5}'],
    ["an id that is no scalar", '{"method":"x","id":{"a":1}}'],
  ])("no request: %s", (_, body) => expect(trailingRequestId(body)).toBeUndefined());
});

interface Seen {
  body: string;
  /** When the client ended the request's connection. */
  closed: Promise<number>;
}

/** A server that reads every POST and answers none (or, for `stream`, opens an SSE answer and writes nothing more). */
async function hungServer(stream: (body: string) => boolean = () => false) {
  const posts: Seen[] = [];
  const gets: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const closed = new Promise<number>((resolve) => res.once("close", () => resolve(Date.now())));
    if (req.method === "GET") gets.push(String(req.headers["last-event-id"] ?? ""));
    if (req.method === "GET" && req.url === "/sse") {
      // The legacy handshake: name the endpoint, then keep the stream open.
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("event: endpoint\ndata: /message\n\n");
      return;
    }
    if (req.method !== "POST") return void res.writeHead(405).end();
    let body = "";
    req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      posts.push({ body, closed });
      // A priming event (an id, no data), as a 2025-11-25 server that can resume its streams sends.
      if (stream(body)) res.writeHead(200, { "content-type": "text/event-stream" }).write("id: e1\ndata:\n\n");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const posted = async (n: number) => {
    while (posts.length < n) await new Promise((r) => setTimeout(r, 5));
    return posts[n - 1]!;
  };
  return { url, posted, gets, close: () => (server.closeAllConnections(), new Promise<void>((r) => server.close(() => r()))) };
}

const within = (promise: Promise<number>, ms: number) => Promise.race([promise, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))]);
// In the order the SDK's protocol layer writes them (`{ ...request, jsonrpc, id }`).
const ping = (id: number) => ({ method: "ping", jsonrpc: "2.0" as const, id });
const cancelled = (requestId: number) => ({ method: "notifications/cancelled", params: { requestId, reason: "timed out" }, jsonrpc: "2.0" as const });

describe("AbandonedRequests", () => {
  const opened: { close(): Promise<unknown> }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close();
  });

  async function followed(kind: "streamable" | "legacy", stream?: (body: string) => boolean) {
    const server = await hungServer(stream);
    const abandoned = new AbandonedRequests(ACCEPT_MS);
    const transport: Transport =
      kind === "streamable" ? new StreamableHTTPClientTransport(new URL(`${server.url}/mcp`)) : new SSEClientTransport(new URL(`${server.url}/sse`), { fetch: abandoned.legacyPosts(fetch) });
    abandoned.follow(transport);
    transport.onerror = () => undefined;
    await transport.start();
    opened.push(transport, server);
    return { server, transport, abandoned };
  }

  test.each(["streamable", "legacy"] as const)("%s: a request's POST ends when the SDK sends its cancellation, the cancellation's own after ACCEPT_MS", async (kind) => {
    const { server, transport, abandoned } = await followed(kind);
    const sent = transport.send(ping(1)).catch(() => "ended");
    const request = await server.posted(1);
    // Not ended while it is in flight: on Streamable HTTP past ACCEPT_MS too (a request may take as
    // long as its caller allows); a legacy POST is answered 202 at once, and ends at ACCEPT_MS.
    expect(await within(request.closed, kind === "streamable" ? ACCEPT_MS * 2 : ACCEPT_MS / 3)).toBeUndefined();
    const cancelledAt = Date.now();
    void transport.send(cancelled(1)).catch(() => undefined);
    expect((await within(request.closed, 1_000))! - cancelledAt).toBeLessThan(200);
    expect(await sent).toBe("ended");
    const cancellation = await server.posted(2);
    expect(cancellation.body).toContain("notifications/cancelled");
    const ended = await within(cancellation.closed, ACCEPT_MS + 1_000);
    expect(ended! - cancelledAt).toBeGreaterThanOrEqual(ACCEPT_MS - 50);
    expect(abandoned.open).toBe(0);
  });

  test("streamable: a request answered on an SSE stream keeps it past ACCEPT_MS (a long call lives as long as the call)", async () => {
    const { server, transport } = await followed("streamable", (body) => body.includes('"ping"'));
    await transport.send(ping(2));
    const request = await server.posted(1);
    expect(await within(request.closed, ACCEPT_MS * 3)).toBeUndefined();
    const cancelledAt = Date.now();
    void transport.send(cancelled(2)).catch(() => undefined);
    expect((await within(request.closed, 1_000))! - cancelledAt).toBeLessThan(200);
    // An abort the transport takes for an intended one: the stream of a request given up on is not
    // resumed (a GET with Last-Event-ID after the SDK's 1 s reconnection delay).
    await new Promise((r) => setTimeout(r, 1_500));
    expect(server.gets).toEqual([]);
  });

  test("legacy: a request's POST that is not accepted ends at ACCEPT_MS", async () => {
    const { server, transport } = await followed("legacy");
    const sentAt = Date.now();
    void transport.send(ping(4)).catch(() => undefined);
    const ended = await within((await server.posted(1)).closed, ACCEPT_MS + 1_000);
    expect(ended! - sentAt).toBeGreaterThanOrEqual(ACCEPT_MS - 50);
  });

  test("an answer forgets its request: a late cancellation of it aborts nothing", async () => {
    const { transport, abandoned } = await followed("streamable");
    void transport.send(ping(3)).catch(() => undefined);
    expect(abandoned.open).toBe(1);
    transport.onmessage?.({ jsonrpc: "2.0", id: 3, result: {} });
    expect(abandoned.open).toBe(0);
  });
});
