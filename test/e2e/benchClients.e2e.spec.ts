import { mcpNameHeader, RawMcpSession, RawModernClient } from "@manifold/bench/clients";
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
