import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey } from "../helpers/mcp.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// review finding (helper-180, 4): a 2025 upstream (or a 2026 one over stdio, which no client
// filters) may mark parameters with `x-mcp-header` annotations the 2026-07-28 transport forbids: on
// a `number` or `object`, a name that is no HTTP token, two names equal but for case, one under
// `items`. Before, the gateway listed such tools as pinned: a conforming 2.4 client pinned to
// 2026-07-28 dropped 5 of the 6 below (`_excludeInvalidXMcpHeaderTools`), so they vanished for
// 2026 agents only, and a call made anyway was refused for a header no conforming client sends
// (`n: 1.5` without `Mcp-Param-N`: 400 -32020). Now the gateway publishes every tool without the
// annotations it may not carry (one definition, both eras), and demands only the headers it publishes.
const object = (properties: Record<string, object>) => ({ type: "object" as const, properties });
const TOOLS: Tool[] = [
  { name: "measure", inputSchema: object({ n: { type: "number", "x-mcp-header": "N" }, region: { type: "string", "x-mcp-header": "Region" } }) },
  { name: "twins", inputSchema: object({ a: { type: "string", "x-mcp-header": "Tenant" }, b: { type: "string", "x-mcp-header": "tenant" } }) },
  { name: "spaced", inputSchema: object({ q: { type: "string", "x-mcp-header": "Bad Name" } }) },
  { name: "buried", inputSchema: object({ rows: { type: "array", items: object({ id: { type: "string", "x-mcp-header": "Id" } }) } }) },
  { name: "whole", inputSchema: object({ o: { type: "object", "x-mcp-header": "O" } }) },
  { name: "fine", inputSchema: object({ region: { type: "string", "x-mcp-header": "Region" } }) },
];
const ARGS: Record<string, Record<string, unknown>> = {
  measure: { n: 1.5, region: "eu" },
  twins: { a: "x", b: "y" },
  spaced: { q: "z" },
  buried: { rows: [{ id: "1" }] },
  whole: { o: { k: 1 } },
  fine: { region: "eu" },
};

/** Every `x-mcp-header` annotation a schema carries on a chain of `properties`, by dotted path. */
function annotations(schema: unknown, path: string[] = [], found: Record<string, string> = {}): Record<string, string> {
  const node = schema as { properties?: Record<string, unknown>; "x-mcp-header"?: string; items?: unknown };
  if (node?.["x-mcp-header"] !== undefined) found[path.join(".")] = node["x-mcp-header"];
  for (const [key, child] of Object.entries(node?.properties ?? {})) annotations(child, [...path, key], found);
  if (node?.items) annotations(node.items, [...path, "[]"], found);
  return found;
}

describe.each(["on", "off"])("tools with invalid x-mcp-header annotations (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: MutableUpstream;
  let names: Record<string, string>;
  let key: string;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), startMutableUpstream(TOOLS)]);
    await registerUpstreams(stack, { name: "old", transport: { type: "streamable-http", url: upstream.url } });
    names = await createVirtualServer(stack, "hdr", TOOLS.map((t) => ({ upstream: "old", tool: t.name })));
    key = (await grantedConsumers(stack, "hdr", ["alice"])).alice!;
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("a 2026-07-28 client lists and calls every tool; 2025 agents are shown the same definitions", async () => {
    const agent = new ModernClient({ name: "agent", version: "1" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } } as never);
    await agent.connect(new ModernTransport(new URL(stack.mcpUrl("hdr")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    await using legacy = await connectWithKey(stack.mcpUrl("hdr"), key);
    try {
      const listed = (await agent.listTools()).tools;
      console.log(`fast path ${fastPath}: a 2026-07-28 client lists ${listed.length} of ${TOOLS.length} tools`);
      expect(listed.map((t) => t.name).sort()).toEqual(Object.values(names).sort());
      const byName = new Map(listed.map((t) => [t.name, t]));
      // What a client may mirror is kept; what it may not is gone.
      expect(annotations(byName.get(names["old/measure"]!)!.inputSchema)).toEqual({ region: "Region" });
      expect(annotations(byName.get(names["old/fine"]!)!.inputSchema)).toEqual({ region: "Region" });
      for (const tool of ["twins", "spaced", "buried", "whole"]) expect(annotations(byName.get(names[`old/${tool}`]!)!.inputSchema), tool).toEqual({});
      // One definition: the 2025 list carries the same schemas.
      const legacyListed = new Map((await legacy.listTools()).tools.map((t) => [t.name, t.inputSchema]));
      for (const tool of listed) expect(legacyListed.get(tool.name), tool.name).toEqual(tool.inputSchema);
      for (const tool of TOOLS) {
        const result = await agent.callTool({ name: names[`old/${tool.name}`]!, arguments: ARGS[tool.name]! });
        expect(result.isError ?? false, `${tool.name}: ${JSON.stringify(result)}`).toBe(false);
        expect((result.content as { text: string }[])[0]!.text).toBe(`${tool.name}: ${JSON.stringify(ARGS[tool.name])}`);
      }
    } finally {
      await agent.close();
    }
  }, 30_000);

  test("the operator is told: the upstream's view names, per tool, each annotation left out and why", async () => {
    const { status, body } = await stack.admin.get("/v1/upstreams/old");
    expect(status).toBe(200);
    const left = Object.fromEntries((body.tools as { name: string; unpublishedParamHeaders?: unknown }[]).map((t) => [t.name, t.unpublishedParamHeaders]));
    console.log(`fast path ${fastPath}: the upstream's view names ${Object.values(left).filter(Boolean).length} tools with annotations left out`);
    expect(left).toEqual({
      measure: [{ path: "n", header: "N", reason: "on a parameter of type number (only string, integer and boolean ones may be mirrored)" }],
      twins: [
        { path: "a", header: "Tenant", reason: "equal but for case to another parameter's" },
        { path: "b", header: "tenant", reason: "equal but for case to another parameter's" },
      ],
      spaced: [{ path: "q", header: "Bad Name", reason: "not an HTTP header name (token)" }],
      buried: [{ path: "rows.id", header: "Id", reason: "not reached through properties alone (under items, anyOf, …)" }],
      whole: [{ path: "o", header: "O", reason: "on a parameter of type object (only string, integer and boolean ones may be mirrored)" }],
      fine: undefined,
    });
  });

  test("only the published headers are demanded: none for a number, the kept one still checked", async () => {
    const measure = names["old/measure"]!;
    const undeclared = await modernRequest(stack.mcpUrl("hdr"), key, "tools/call", { name: measure, arguments: { n: 1.5 } }, {});
    expect(undeclared.status, JSON.stringify(undeclared.error)).toBe(200);
    // The valid annotation beside it is still one the gateway checks.
    const missing = await modernRequest(stack.mcpUrl("hdr"), key, "tools/call", { name: measure, arguments: { n: 1, region: "eu" } }, {});
    expect(missing.status).toBe(400);
    expect(missing.error).toMatchObject({ code: -32020, data: { mismatch: { header: "Mcp-Param-Region" } } });
  });
});
