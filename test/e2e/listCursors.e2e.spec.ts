import type { NatsServer } from "@manifold/nats-server";
import type { Prompt, Resource, Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const note: Tool = { name: "note", description: "Takes a note", inputSchema: { type: "object" } };
const summary: Prompt = { name: "summary", description: "Summarises" };
const readme: Resource = { uri: "file:///readme", name: "readme" };
const LISTS = ["tools/list", "prompts/list", "resources/list", "resources/templates/list"] as const;

// Manifold answers every list in one page and never sends a `nextCursor`, so any cursor is one it
// did not give: "Invalid cursors SHOULD result in an error with code -32602 (Invalid params)"
// (server/utilities/pagination, 2025-11-25 and 2026-07-28). Before (helper-182), each list answered
// a cursor with the whole list, and a 2026-07-28 one with `ttlMs`/`cacheScope`: a client caches the
// full list under a key that names no page.
describe.each(["on", "off"] as const)("a cursor on a list (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: MutableUpstream;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_FAST_PATH: fastPath }), startMutableUpstream([note], "1.0.0", [summary], [readme])]);
    await registerUpstreams(stack, { name: "u", transport: { type: "streamable-http", url: upstream.url } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "v", tools: [{ upstream: "u", tool: "note" }], prompts: [{ upstream: "u", prompt: "summary" }], resources: [{ upstream: "u", uri: readme.uri }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("a 2026-07-28 list with a cursor is refused with -32602; without one it is answered", async () => {
    const seen: string[] = [];
    for (const method of LISTS) {
      for (const cursor of ["bogus", ""]) {
        const answer = await modernRequest(stack.mcpUrl("v"), "none", method, { cursor }, {});
        seen.push(`${method} ${JSON.stringify(cursor)}: ${answer.status} ${answer.error ? answer.error.code : `list, cacheScope ${answer.result?.cacheScope}`}`);
      }
      const whole = await modernRequest(stack.mcpUrl("v"), "none", method, {}, {});
      expect(whole.result, method).toMatchObject({ resultType: "complete" });
    }
    expect(seen.filter((line) => !line.endsWith(": 200 -32602"))).toEqual([]);
  }, 60_000);

  test("a 2025 list with a cursor is refused with -32602; without one it is answered", async () => {
    await using client = await connectHttp(stack.mcpUrl("v"));
    const lists = { "tools/list": client.listTools.bind(client), "prompts/list": client.listPrompts.bind(client), "resources/list": client.listResources.bind(client), "resources/templates/list": client.listResourceTemplates.bind(client) };
    const seen: string[] = [];
    for (const method of LISTS) {
      for (const cursor of ["bogus", ""]) {
        const outcome = await rpcError(lists[method]({ cursor })).then((e) => String(e.code), () => "the whole list");
        seen.push(`${method} ${JSON.stringify(cursor)}: ${outcome}`);
      }
      await expect(lists[method]()).resolves.toBeDefined();
    }
    expect(seen.filter((line) => !line.endsWith(": -32602"))).toEqual([]);
  }, 60_000);
});
