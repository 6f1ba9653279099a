import type { NatsServer } from "@manifold/nats-server";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { connect } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { z } from "zod";
import { serveSessions, type SessionServer } from "../fixtures/sessionServer.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-95): a 2026-07-28 call whose connection closed while the gateway admitted it (its
// awaits: a grant's rate limit, a JWT) was never cancelled: closing the stream is a 2026-07-28
// call's cancellation, and that close had happened before anyone listened. 5 of 5 ran upstream to their end.

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "x", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
let nats: NatsServer;
let stack: Stack;
let upstream: SessionServer<McpServer>;
let tool: string;
let key: string;
const outcomes: string[] = [];

beforeAll(async () => {
  nats = await startNats();
  upstream = await serveSessions(() => {
    const server = new McpServer({ name: "slow", version: "1" });
    server.registerTool("sleep", { description: "sleeps 3 s", inputSchema: { tag: z.string() } }, async (_args, extra) => {
      const outcome = await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve("done"), 3_000);
        extra.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve("aborted");
        });
      });
      outcomes.push(outcome);
      return { content: [{ type: "text", text: outcome }] };
    });
    return server;
  });
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  await registerUpstreams(stack, { name: "sl", transport: { type: "streamable-http", url: upstream.url } });
  tool = (await createVirtualServer(stack, "vs", [{ upstream: "sl", tool: "sleep" }]))["sl/sleep"]!;
  await stack.admin.post("/v1/consumers", { name: "bob" });
  key = (await stack.admin.post("/v1/consumers/bob/keys", {})).body.key;
  // A rate limit: admission awaits it (`countCall`), while the connection closes.
  await stack.admin.post("/v1/virtual-servers/vs/grants", { grantId: "bob", subject: { consumer: "bob" }, rateLimitPerMinute: 1_000 });
}, 60_000);
afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

/** Writes a whole 2026-07-28 call and closes the connection at once. */
function sendAndClose(tag: string): void {
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: tool, arguments: { tag }, _meta: META } });
  const url = new URL(stack.mcpUrl("vs"));
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool, "content-length": String(Buffer.byteLength(body)) };
  const head = `POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
  const socket = connect(Number(url.port), url.hostname, () => {
    socket.write(head + body);
    socket.destroy();
  });
  socket.on("error", () => undefined);
}

test("a 2026-07-28 call whose connection closed while it was admitted does not run upstream to its end", async () => {
  for (let i = 0; i < 5; i++) sendAndClose(`closed${i}`);
  await new Promise((r) => setTimeout(r, 4_000));
  // Before: ["done" × 5]. Now each is either never sent upstream or cancelled there.
  expect(outcomes.filter((o) => o === "done")).toEqual([]);
}, 30_000);
