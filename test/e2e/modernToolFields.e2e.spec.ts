import type { NatsServer } from "@manifold/nats-server";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { MODERN } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const note: Tool = { name: "note", description: "Takes a note", inputSchema: { type: "object" }, execution: { taskSupport: "optional" } };

/** The raw body of a 2026-07-28 tools/list: the 2.4 client's parse drops keys the schema does not know, so it cannot see them. */
async function rawList(url: string): Promise<string> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": MODERN, "mcp-method": "tools/list" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "tools/list",
      params: { _meta: { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } } },
    }),
  });
  expect(res.status).toBe(200);
  return res.text();
}

// The 2026-07-28 Tool has no `execution` (tasks moved to the extension, SEP-2663); the SDK lane's
// encoder deletes it (`enforceDeletedFields`). Before (helper-182), the fast path spliced the pinned
// 2025 definitions as they were, so the wire differed with the fast path on and off.
describe.each(["on", "off"] as const)("a 2025 tool's execution on a 2026-07-28 tools/list (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: MutableUpstream;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_FAST_PATH: fastPath }), startMutableUpstream([note])]);
    await registerUpstreams(stack, { name: "u", transport: { type: "streamable-http", url: upstream.url } });
    names = await createVirtualServer(stack, "v", [{ upstream: "u", tool: "note" }]);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("a 2026-07-28 agent's list has no execution, twice (the cached bytes too); a 2025 agent's keeps it", async () => {
    for (let i = 0; i < 2; i++) {
      const text = await rawList(stack.mcpUrl("v"));
      const { result } = JSON.parse(text) as { result: { tools: Record<string, unknown>[] } };
      expect(result.tools).toEqual([{ name: names["u/note"], description: "Takes a note", inputSchema: { type: "object" } }]);
      expect(text).not.toContain('"execution"');
    }
    await using legacy = await connectHttp(stack.mcpUrl("v"));
    expect((await legacy.listTools()).tools).toEqual([{ name: names["u/note"], description: "Takes a note", inputSchema: { type: "object" }, execution: { taskSupport: "optional" } }]);
  }, 60_000);
});
