import type { NatsServer } from "@manifold/nats-server";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const ACCEPT = "application/json, text/event-stream";
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
const HEADERS_TIMEOUT_MS = 1_000;
const REQUEST_TIMEOUT_MS = 2_000;

/** The HTTP edge answers every refusal with a JSON-RPC envelope and bounds what slow or odd clients can hold. */
describe("the gateway's HTTP edge", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let names: Record<string, string>;
  let session: string;
  const logs: string[] = [];

  const send = async (method: string, body?: string, headers: Record<string, string> = {}, url = stack.mcpUrl("edge")) => {
    const res = await fetch(url, {
      method,
      headers: { accept: ACCEPT, "mcp-protocol-version": "2025-06-18", "mcp-session-id": session, ...headers },
      ...(body === undefined ? {} : { body }),
    });
    const text = await res.text();
    const data = text.startsWith("event:") ? JSON.parse(text.split("\n").find((l) => l.startsWith("data:"))!.slice(5)) : text ? JSON.parse(text) : undefined;
    return { status: res.status, headers: res.headers, body: data };
  };
  const expectEnvelope = (body: any, code: number, dataCode: string) => {
    expect(body).toMatchObject({ jsonrpc: "2.0", error: { code, data: { code: dataCode } } });
  };
  /** A raw socket, so nothing between the test and the gateway fixes up what it sends. */
  const rawSocket = () => {
    const { port } = new URL(stack.gatewayUrl);
    const socket = connect(Number(port), "127.0.0.1");
    let received = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (received += chunk));
    const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now())));
    return { socket, closed, received: () => received };
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([
      startStack(nats.url, { GATEWAY_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS), GATEWAY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) }, { logs }),
      startRecordingUpstream(),
    ]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "edge", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "slow" },
      { upstream: "rec", tool: "big" },
    ]);
    const init = await fetch(stack.mcpUrl("edge"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT }, body: JSON.stringify(INIT) });
    session = init.headers.get("mcp-session-id")!;
    await init.text();
    await send("POST", JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }), { "content-type": "application/json" });
  });

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("a request for another host (DNS rebinding) or from a foreign origin is refused with 403", async () => {
    const { port } = new URL(stack.gatewayUrl);
    const exchange = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: any }>((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port, path: "/mcp/edge", method: "POST", headers: { "content-type": "application/json", accept: ACCEPT, ...headers } }, (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (c: string) => (text += c));
          res.on("end", () => resolve({ status: res.statusCode!, body: text.startsWith("event:") ? text : JSON.parse(text) }));
        });
        req.once("error", reject).end(JSON.stringify(INIT));
      });
    const rebound = await exchange({ host: `rebind.evil.example:${port}` });
    expect(rebound.status).toBe(403);
    expectEnvelope(rebound.body, -32043, "host_not_allowed");
    const foreign = await exchange({ host: `127.0.0.1:${port}`, origin: "http://evil.example" });
    expect(foreign.status).toBe(403);
    expectEnvelope(foreign.body, -32043, "origin_not_allowed");
    expect((await exchange({ host: `localhost:${port}`, origin: `http://localhost:${port}` })).status).toBe(200);
    // An allowed name with a port that is none: the same refusal, not an internal error further in.
    for (const host of ["127.0.0.1:abc", "127.0.0.1:99999", "localhost:1 2", "[::1]x:1"]) {
      const odd = await exchange({ host });
      expect(odd.status, host).toBe(403);
      expectEnvelope(odd.body, -32043, "host_not_allowed");
    }
    expect((await fetch(`${stack.gatewayUrl}/healthz`, { headers: { origin: "http://evil.example" } })).status).toBe(200);
  });

  test("a request id holding a line break or non-ASCII is served under its own id, and forges no bus header", async () => {
    for (const id of ["x\r\nManifold-Caller: forged", "x\nManifold-Tool: hidden", "ü-€"]) {
      const before = recording.calls.length;
      const call = { jsonrpc: "2.0", id, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: "forged?" } } };
      const res = await send("POST", JSON.stringify(call), { "content-type": "application/json" });
      expect(res.body, JSON.stringify(id)).toMatchObject({ jsonrpc: "2.0", id, result: { content: [{ type: "text" }] } });
      // The upstream saw one call, of the tool named, with nothing but what the agent sent.
      expect(recording.calls.slice(before)).toMatchObject([{ tool: "echo", arguments: { message: "forged?" } }]);
    }
  });

  test("attack: pipelined calls on a socket that is never read are refused unrun, so their answers cannot pile up in memory", async () => {
    // One write of many calls for large answers, then nothing read: Node parses them all before any
    // answer exists. Each ran and its 900 KB answer stayed in the heap until the socket closed
    // (400 such calls: +333 MiB; 4,900: the gateway died of heap exhaustion).
    const { port } = new URL(stack.gatewayUrl);
    const before = recording.calls.filter((c) => c.tool === "big").length;
    let wire = "";
    for (let i = 0; i < 50; i++) {
      const body = JSON.stringify({ jsonrpc: "2.0", id: 9_000 + i, method: "tools/call", params: { name: names["rec/big"], arguments: { bytes: 900_000 } } });
      wire += `POST /mcp/edge HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nAccept: ${ACCEPT}\r\nMcp-Session-Id: ${session}\r\nMcp-Protocol-Version: 2025-06-18\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    }
    const { socket, closed } = rawSocket();
    socket.once("connect", () => socket.write(wire));
    socket.pause();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    // The first call runs; every call behind it on the socket is refused before it reaches a tool.
    expect(recording.calls.filter((c) => c.tool === "big").length - before).toBe(1);
    // Reading now: the first answer, then the refusals, each naming why, and the gateway closes the connection.
    let received = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (received += chunk));
    socket.resume();
    await closed;
    const statuses = [...received.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => Number(m[1]));
    expect(statuses[0]).toBe(200);
    expect(statuses.slice(1).length).toBeGreaterThan(0);
    expect(new Set(statuses.slice(1))).toEqual(new Set([400]));
    expect(received).toContain("HTTP pipelining is not served");
    // An ordinary client on its own connection is served as before.
    const echo = await send("POST", JSON.stringify({ jsonrpc: "2.0", id: 9_999, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: "after" } } }), { "content-type": "application/json" });
    expect(echo.body).toMatchObject({ id: 9_999, result: { content: [{ type: "text" }] } });
  });

  test("HEAD on a live session is 405 with Allow, and logs no error", async () => {
    const head = await fetch(stack.mcpUrl("edge"), { method: "HEAD", headers: { "mcp-session-id": session } });
    expect(head.status).toBe(405);
    expect(head.headers.get("allow")).toBe("GET, POST, DELETE");
    expect(head.headers.get("content-type")).toMatch(/^application\/json/);
    for (const method of ["PUT", "PATCH", "OPTIONS"]) {
      const answer = await send(method, undefined);
      expect(answer.status).toBe(405);
      expectEnvelope(answer.body, -32600, "method_not_allowed");
    }
    expect(logs.filter((line) => JSON.parse(line).level >= 50)).toEqual([]);
  });

  test("a virtual-server name past 100 characters is an unknown virtual server; a path segment past the router's limit is 414", async () => {
    const long = await send("POST", JSON.stringify(INIT), { "content-type": "application/json" }, stack.mcpUrl("v".repeat(150)));
    expect(long.status).toBe(404);
    expectEnvelope(long.body, -32044, "unknown_virtual_server");
    const longer = await send("POST", JSON.stringify(INIT), { "content-type": "application/json" }, stack.mcpUrl("v".repeat(5_000)));
    expect(longer.status).toBe(414);
    expectEnvelope(longer.body, -32600, "uri_too_long");
  });

  test("headers over 16 KiB get 431 with a JSON-RPC body", async () => {
    const answer = await send("POST", JSON.stringify({ jsonrpc: "2.0", id: 2, method: "ping" }), { "content-type": "application/json", "x-padding": "p".repeat(20_000) });
    expect(answer.status).toBe(431);
    expectEnvelope(answer.body, -32600, "headers_too_large");
    const url = await send("GET", undefined, {}, `${stack.mcpUrl("edge")}?q=${"q".repeat(20_000)}`);
    expect(url.status).toBe(431);
  });

  test("a body-less DELETE or POST with a JSON content type is not refused for its empty body", async () => {
    const init = await fetch(stack.mcpUrl("edge"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT }, body: JSON.stringify(INIT) });
    const id = init.headers.get("mcp-session-id")!;
    await init.text();
    const post = await send("POST", undefined, { "content-type": "application/json", "mcp-session-id": id });
    expect(post.status).toBe(400);
    expectEnvelope(post.body, -32600, "invalid_request");
    expect(post.body.error.message).not.toMatch(/cannot be empty/i);
    const deleted = await send("DELETE", undefined, { "content-type": "application/json", "mcp-session-id": id });
    expect(deleted.status).toBe(200);
  });

  test("the standalone SSE stream sends its headers at once", async () => {
    const started = Date.now();
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(stack.mcpUrl("edge"), { method: "GET", headers: { accept: "text/event-stream", "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" } }, resolve);
      req.once("error", reject).end();
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toMatch(/^text\/event-stream/);
    expect(Date.now() - started).toBeLessThan(1_000);
    response.destroy();
  });

  test("a second request with an id still in flight in the session is refused at once; the first is answered", async () => {
    const call = (id: number, ms: number) =>
      send("POST", JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: names["rec/slow"], arguments: { ms } } }), { "content-type": "application/json" });
    const first = call(5, 1_000);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    const second = await call(5, 10);
    expect(Date.now() - started).toBeLessThan(500);
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ jsonrpc: "2.0", id: 5, error: { code: -32600, data: { code: "duplicate_request_id" } } });
    expect((await first).body).toMatchObject({ id: 5, result: { content: [{ type: "text", text: "slept 1000 ms" }] } });
    // Released once answered; a batch repeating an id is refused too.
    expect((await call(5, 10)).body).toMatchObject({ id: 5, result: {} });
    const batch = await send("POST", JSON.stringify([{ jsonrpc: "2.0", id: 9, method: "ping" }, { jsonrpc: "2.0", id: 9, method: "ping" }]), { "content-type": "application/json" });
    expect(batch.status).toBe(409);
  });

  test("slow sockets are closed with 408 within the documented bound; SSE streams and slow calls are not", async () => {
    // A long-lived notification stream and a tool call slower than the request timeout, started first.
    const stream = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(stack.mcpUrl("edge"), { method: "GET", headers: { accept: "text/event-stream", "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" } }, resolve);
      req.once("error", reject).end();
    });
    let streamClosed = false;
    stream.once("close", () => (streamClosed = true));
    await using agent = await connectHttp(stack.mcpUrl("edge"));
    const slowCall = agent.callTool({ name: names["rec/slow"]!, arguments: { ms: REQUEST_TIMEOUT_MS + 2_000 } });

    const started = Date.now();
    const host = new URL(stack.gatewayUrl).host;
    const sockets: { socket: Socket; closed: Promise<number>; received: () => string }[] = [];
    for (let i = 0; i < 50; i++) {
      const raw = rawSocket();
      // Half never finish their headers; half finish them and then trickle a body.
      raw.socket.write(i % 2 ? `POST /mcp/edge HTTP/1.1\r\nHost: ${host}\r\n` : `POST /mcp/edge HTTP/1.1\r\nHost: ${host}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{`);
      sockets.push(raw);
    }
    const trickle = setInterval(() => {
      for (const [i, { socket }] of sockets.entries()) if (!socket.destroyed) socket.write(i % 2 ? "x-slow: 1\r\n" : " ");
    }, 200);
    try {
      const closedAt = await Promise.all(sockets.map((s) => s.closed));
      const bound = REQUEST_TIMEOUT_MS + 1_000;
      expect(Math.max(...closedAt) - started).toBeLessThan(bound + 1_500);
      for (const { received } of sockets) {
        expect(received()).toMatch(/^HTTP\/1\.1 408 /);
        expect(JSON.parse(received().split("\r\n\r\n")[1]!)).toMatchObject({ jsonrpc: "2.0", error: { data: { code: "request_timeout" } } });
      }
    } finally {
      clearInterval(trickle);
    }
    expect((await slowCall).content).toEqual([{ type: "text", text: `slept ${REQUEST_TIMEOUT_MS + 2_000} ms` }]);
    expect(streamClosed).toBe(false);
    stream.destroy();
  });
});
