import { mcpNameHeader, RawMcpSession, RawModernClient } from "@manifold/bench/clients";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startConformanceServer, type ConformanceServer } from "../fixtures/conformanceServer.js";

/**
 * The bench measures with raw clients (an SDK client would saturate first). Each must speak its
 * era the way a real server expects: here against the SDK 2.x server of the conformance fixture,
 * which checks the 2026-07-28 envelope and headers strictly.
 */
describe("the bench's load clients against an SDK 2.x server", () => {
  let fixture: ConformanceServer;
  let pool: Pool;
  let path: string;

  beforeAll(async () => {
    fixture = await startConformanceServer();
    const url = new URL(fixture.url);
    pool = new Pool(url.origin, { connections: 4 });
    path = url.pathname;
  });

  afterAll(async () => {
    await pool?.close();
    await fixture?.close();
  });

  test("2026-07-28: discovery, then calls without a session, every one complete", async () => {
    const client = new RawModernClient(pool, path);
    await client.initialize();
    for (let i = 0; i < 3; i++) {
      const result = await client.request("tools/call", { name: "test_simple_text", arguments: {} });
      expect(result).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "This is a simple text response for testing." }] });
    }
    expect(await client.requestBytes("tools/list", {})).toBeGreaterThan(100);
  });

  test("2026-07-28: a request whose Mcp-Name disagrees with its body is refused, so the header is what the server reads", async () => {
    const res = await pool.request({
      method: "POST",
      path,
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "other" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "tools/call",
        params: { name: "test_simple_text", arguments: {}, _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } },
      }),
    });
    expect(res.statusCode).toBe(400);
    expect(((await res.body.json()) as { error: { code: number } }).error.code).toBe(-32020);
  });

  test("Mcp-Name: plain when it is safe header text, the Base64 sentinel otherwise", () => {
    expect(mcpNameHeader("echo")).toBe("echo");
    expect(mcpNameHeader("wetter_straße")).toBe(`=?base64?${Buffer.from("wetter_straße").toString("base64")}?=`);
    expect(mcpNameHeader(" padded")).toMatch(/^=\?base64\?/);
  });

  test("2025: initialize opens a session, calls go through it, close ends it", async () => {
    const session = new RawMcpSession(pool, path);
    await session.initialize();
    expect(await session.request("tools/call", { name: "test_simple_text", arguments: {} })).toMatchObject({ content: [{ type: "text" }] });
    await session.close();
    await expect(session.request("tools/call", { name: "test_simple_text", arguments: {} })).rejects.toThrow(/HTTP 404/);
  });
});

/**
 * What each client writes, header by header in order and the body byte for byte, with the gateway
 * credential the bench gives it (docs/performance.md, "What the load generator pays per call",
 * 2026-12-07): the same bytes however the client builds them.
 */
describe("the bench's load clients on the wire", () => {
  const seen: { rawHeaders: string[]; body: string }[] = [];
  let server: Server;
  let pool: Pool;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        seen.push({ rawHeaders: req.rawHeaders, body });
        const message = JSON.parse(body) as { id?: number; method: string };
        if (message.id === undefined) return void res.writeHead(202).end();
        const result = message.method === "initialize" ? { protocolVersion: "2025-06-18", capabilities: {}, serverInfo: { name: "wire", version: "1" } } : { content: [] };
        res.writeHead(200, { "content-type": "application/json", ...(message.method === "initialize" ? { "mcp-session-id": "s-1" } : {}) });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 });
  });

  afterAll(async () => {
    await pool?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  const headerLines = (raw: string[]) => Array.from({ length: raw.length / 2 }, (_, i) => `${raw[2 * i]!.toLowerCase()}: ${raw[2 * i + 1]}`).filter((l) => !/^(host|connection|content-length):/.test(l));

  test("2026-07-28: the credential first, then the transport's headers; the envelope in _meta", async () => {
    seen.length = 0;
    const client = new RawModernClient(pool, "/mcp/bench", { authorization: "Bearer k-1" });
    await client.request("tools/call", { name: "echo_x", arguments: { message: "hello, manifold" } });
    await client.request("tools/list", {});
    expect(headerLines(seen[0]!.rawHeaders)).toEqual([
      "authorization: Bearer k-1",
      "content-type: application/json",
      "accept: application/json, text/event-stream",
      "mcp-protocol-version: 2026-07-28",
      "mcp-method: tools/call",
      "mcp-name: echo_x",
    ]);
    expect(seen[0]!.body).toBe(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo_x","arguments":{"message":"hello, manifold"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}',
    );
    expect(headerLines(seen[1]!.rawHeaders).slice(-2)).toEqual(["mcp-protocol-version: 2026-07-28", "mcp-method: tools/list"]);
    expect(seen[1]!.body).toBe(
      '{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}',
    );
  });

  test("2026-07-28: a caller's own _meta is kept beside the envelope, the envelope's keys winning", async () => {
    seen.length = 0;
    const client = new RawModernClient(pool, "/mcp/bench");
    await client.request("tools/call", { name: "echo", arguments: {}, _meta: { progressToken: 7, "io.modelcontextprotocol/protocolVersion": "old" } });
    expect(JSON.parse(seen[0]!.body).params._meta).toEqual({
      progressToken: 7,
      "io.modelcontextprotocol/protocolVersion": "2026-07-28",
      "io.modelcontextprotocol/clientInfo": { name: "bench", version: "1" },
      "io.modelcontextprotocol/clientCapabilities": {},
    });
  });

  test("2025: the credential first, then the transport's headers, the session's once it has one", async () => {
    seen.length = 0;
    const session = new RawMcpSession(pool, "/mcp/bench", { authorization: "Bearer k-1" });
    await session.initialize();
    await session.request("tools/call", { name: "echo_x", arguments: { message: "hello, manifold" } });
    const common = ["authorization: Bearer k-1", "content-type: application/json", "accept: application/json, text/event-stream", "mcp-protocol-version: 2025-06-18"];
    expect(headerLines(seen[0]!.rawHeaders)).toEqual(common);
    expect(headerLines(seen[1]!.rawHeaders)).toEqual([...common, "mcp-session-id: s-1"]);
    expect(headerLines(seen[2]!.rawHeaders)).toEqual([...common, "mcp-session-id: s-1"]);
    expect(seen[2]!.body).toBe('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo_x","arguments":{"message":"hello, manifold"}}}');
  });

  test("each client reads the credential it is given once, not on every request", async () => {
    let reads = 0;
    const counted = <T extends object>(target: T) =>
      new Proxy(target, {
        get: (t, key, receiver) => (reads++, Reflect.get(t, key, receiver)),
        ownKeys: (t) => (reads++, Reflect.ownKeys(t)),
      });
    const modern = new RawModernClient(pool, "/mcp/bench", counted({ authorization: "Bearer k-1" }));
    await modern.request("tools/call", { name: "echo", arguments: {} });
    const afterOne = reads;
    for (let i = 0; i < 5; i++) await modern.request("tools/call", { name: "echo", arguments: {} });
    expect(reads).toBe(afterOne);
    reads = 0;
    const session = new RawMcpSession(pool, "/mcp/bench", counted({ authorization: "Bearer k-1" }));
    await session.initialize();
    await session.request("tools/call", { name: "echo", arguments: {} });
    const afterFirst = reads;
    for (let i = 0; i < 5; i++) await session.request("tools/call", { name: "echo", arguments: {} });
    expect(reads).toBe(afterFirst);
  });
});
