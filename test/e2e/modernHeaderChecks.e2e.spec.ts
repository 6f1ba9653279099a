import type { NatsServer } from "@manifold/nats-server";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { ListResourcesRequestSchema, ListResourceTemplatesRequestSchema, ReadResourceRequestSchema, SubscribeRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { serveSessions } from "../fixtures/sessionServer.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (helper-99): what a 2026-07-28 request's headers say against what its body does.
// 1. `Mcp-Param-*`: a tool marks a parameter with `x-mcp-header` so that proxies and firewalls
//    before the server can route and decide on it without reading the body. Before, the gateway
//    checked none of them (the low-level 2.x server leaves it to `McpServer`, the connector mirrors
//    the body upstream): `Mcp-Param-Region: us` over `region: "eu"` ran with "eu", 200, both lanes.
// 2. `subscriptions/listen` the SDK refuses (headers that disagree, an unknown version): before, its
//    resources were subscribed upstream before the refusal, and stayed in the caller's share.

const MODERN = "2026-07-28";
const ENVELOPE = { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "attack", version: "1" } };

async function post(url: string, key: string, method: string, params: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": MODERN, "mcp-method": method, ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 7, method, params: { ...params, _meta: ENVELOPE } }),
  });
  return { status: res.status, body: JSON.parse(await res.text()) as { result?: { content?: { text: string }[] }; error?: { code: number; message: string; data?: Record<string, unknown> } } };
}

describe.each(["on", "off"])("Mcp-Param-* headers against the body (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernHttp>>;
  let region: string;
  const keys: Record<string, string> = {};

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), serveModernHttp()]);
    await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "hdr", tools: [{ upstream: "modern", tool: "region" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    region = created.body.tools[0].exposedName;
    for (const name of ["alice", "bob"]) {
      await stack.admin.post("/v1/consumers", { name });
      keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
    }
    await stack.admin.post("/v1/virtual-servers/hdr/grants", { grantId: "alice", subject: { consumer: "alice" } });
    await stack.admin.post("/v1/virtual-servers/hdr/grants", { grantId: "bob", subject: { consumer: "bob" }, deniedTools: [region] });
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  const call = (key: string, args: Record<string, unknown>, headers: Record<string, string>, name = region) => post(stack.mcpUrl("hdr"), key, "tools/call", { name, arguments: args }, { "mcp-name": name, ...headers });

  test("attack: a header that disagrees with the body, or is missing, is refused with HeaderMismatch before anything goes upstream", async () => {
    const disagree = await call(keys.alice!, { region: "eu" }, { "mcp-param-region": "us" });
    expect(disagree.status).toBe(400);
    expect(disagree.body.error).toMatchObject({ code: -32020, data: { mismatch: { header: "Mcp-Param-Region" } } });
    const missing = await call(keys.alice!, { region: "eu", priority: 2 }, { "mcp-param-region": "eu" });
    expect(missing.status).toBe(400);
    expect(missing.body.error?.message).toContain("Mcp-Param-Priority header is absent");
  });

  test("headers that agree (plain, the Base64 sentinel, numbers by value) are served, and mirrored upstream", async () => {
    const plain = await call(keys.alice!, { region: "eu", priority: 2 }, { "mcp-param-region": "eu", "mcp-param-priority": "2" });
    expect(plain.status).toBe(200);
    expect(JSON.parse(plain.body.result!.content![0]!.text)).toEqual({ region: "eu", priority: "2" });
    const encoded = await call(keys.alice!, { region: " eu " }, { "mcp-param-region": `=?base64?${Buffer.from(" eu ").toString("base64")}?=` });
    expect(encoded.status).toBe(200);
  });

  test("a tool the caller may not see answers as one that does not exist, whatever its headers", async () => {
    const denied = await call(keys.bob!, { region: "eu" }, { "mcp-param-region": "us" });
    const absent = await call(keys.bob!, { region: "eu" }, { "mcp-param-region": "us" }, "modern_nothing");
    expect(denied.status).toBe(absent.status);
    expect(denied.body.error?.code).toBe(absent.body.error?.code);
    expect(denied.body.error?.code).not.toBe(-32020);
  });
});

describe("a subscriptions/listen the SDK refuses", () => {
  let nats: NatsServer;
  let stack: Stack;
  let docs: Awaited<ReturnType<typeof serveSessions>>;
  const subscribed: string[] = [];
  let key: string;
  let prefix: string;

  beforeAll(async () => {
    nats = await startNats();
    const build = () => {
      const server = new Server({ name: "docs", version: "1.0.0" }, { capabilities: { resources: { subscribe: true } } });
      server.setRequestHandler(ListResourcesRequestSchema, () => ({ resources: [{ uri: "doc://a", name: "a" }] }));
      server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({ resourceTemplates: [{ uriTemplate: "doc://item/{id}", name: "item" }] }));
      server.setRequestHandler(ReadResourceRequestSchema, (r) => ({ contents: [{ uri: r.params.uri, text: "x" }] }));
      server.setRequestHandler(SubscribeRequestSchema, (r) => (subscribed.push(r.params.uri), {}));
      return server;
    };
    [stack, docs] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required" }), serveSessions(build)]);
    await registerUpstreams(stack, { name: "docs", transport: { type: "streamable-http", url: docs.url } });
    const created = await stack.admin.post("/v1/virtual-servers", { name: "lst", tools: [], resources: [{ upstream: "docs", uriTemplate: "doc://item/{id}" }] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await stack.admin.post("/v1/consumers", { name: "mallory" });
    key = (await stack.admin.post("/v1/consumers/mallory/keys", {})).body.key;
    await stack.admin.post("/v1/virtual-servers/lst/grants", { grantId: "m", subject: { consumer: "mallory" } });
    const listed = await post(stack.mcpUrl("lst"), key, "resources/templates/list", {});
    prefix = ((listed.body.result as unknown as { resourceTemplates: { uriTemplate: string }[] }).resourceTemplates[0]!.uriTemplate).replace("{id}", "");
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await docs?.close();
    await nats?.stop();
  });

  /** A listen for one resource with these headers: its status (a stream is read for 500 ms, then left). */
  async function listen(headers: Record<string, string>, uri: string): Promise<number> {
    const stop = new AbortController();
    const res = await fetch(stack.mcpUrl("lst"), {
      method: "POST",
      signal: stop.signal,
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, ...headers },
      body: JSON.stringify({ jsonrpc: "2.0", id: 5, method: "subscriptions/listen", params: { notifications: { resourceSubscriptions: [uri] }, _meta: ENVELOPE } }),
    });
    if (res.status === 200) setTimeout(() => stop.abort(), 500);
    else await res.text();
    return res.status;
  }

  test("attack: refused (Mcp-Method that disagrees or is absent, a version not served), it subscribes nothing upstream; accepted, it does", async () => {
    const refused: Record<string, string>[] = [
      { "mcp-protocol-version": MODERN, "mcp-method": "tools/list" },
      { "mcp-protocol-version": MODERN },
      { "mcp-protocol-version": "2099-01-01", "mcp-method": "subscriptions/listen" },
    ];
    for (const [i, headers] of refused.entries()) expect(await listen(headers, `${prefix}refused-${i}`)).toBeGreaterThanOrEqual(400);
    expect(await listen({ "mcp-protocol-version": MODERN, "mcp-method": "subscriptions/listen" }, `${prefix}accepted`)).toBe(200);
    await expect.poll(() => subscribed.filter((uri) => uri.endsWith("accepted")).length, { timeout: 5_000 }).toBe(1);
    expect(subscribed.filter((uri) => uri.includes("refused"))).toEqual([]);
  });
});
