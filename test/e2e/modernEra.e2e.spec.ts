import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { KvBucket } from "@manifold/contracts";
import { jetstreamManager } from "@nats-io/jetstream";
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

const REVISION = "2026-07-28";
const envelope = { "io.modelcontextprotocol/protocolVersion": REVISION, "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } };

/**
 * MCP 2026-07-28 at the gateway: stateless, on the same URLs as the 2025 revisions, with a 2.4
 * client pinned to the new revision, a 1.32.2 client beside it, and raw HTTP for the wire details.
 * Run with the seam's fast path on and off: both must answer alike.
 */
describe.each(["on", "off"] as const)("MCP 2026-07-28 beside the 2025 revisions (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let names: Record<string, string>;
  let aliceKey: string;
  let bobKey: string;
  const clients: ModernClient[] = [];

  const modern = async (key: string, url = stack.mcpUrl("modern")) => {
    const client = new ModernClient({ name: "modern-agent", version: "1.0.0" }, { versionNegotiation: { mode: { pin: REVISION } } });
    await client.connect(new ModernTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    clients.push(client);
    return client;
  };
  /** One raw 2026-07-28 POST; the mirrored headers follow the body unless given. */
  const raw = async (key: string, method: string, params: Record<string, unknown> = {}, headers: Record<string, string> = {}, url = stack.mcpUrl("modern")) => {
    const name: Record<string, string> = typeof params.name === "string" ? { "mcp-name": params.name } : {};
    // A header given as "" is left out.
    const all = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": REVISION, "mcp-method": method, ...name, ...headers };
    const res = await fetch(url, {
      method: "POST",
      headers: Object.fromEntries(Object.entries(all).filter(([, v]) => v !== "")),
      body: JSON.stringify({ jsonrpc: "2.0", id: 7, method, params: { ...params, _meta: { ...envelope, ...(params._meta as object) } } }),
    });
    const text = await res.text();
    const body = text.startsWith("event:") || text.startsWith(":") ? JSON.parse(text.split("\n").filter((l) => l.startsWith("data:")).pop()!.slice(5)) : JSON.parse(text);
    return { status: res.status, body, headers: res.headers };
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "modern", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
      { upstream: "rec", tool: "slow" },
    ]);
    for (const name of ["alice", "bob"]) expect((await stack.admin.post("/v1/consumers", { name })).status).toBe(201);
    aliceKey = (await stack.admin.post("/v1/consumers/alice/keys", {})).body.key;
    bobKey = (await stack.admin.post("/v1/consumers/bob/keys", {})).body.key;
    await stack.admin.post("/v1/virtual-servers/modern/grants", { grantId: "alice", subject: { consumer: "alice" } });
    await stack.admin.post("/v1/virtual-servers/modern/grants", { grantId: "bob", subject: { consumer: "bob" }, deniedTools: [names["rec/add"]] });
    // A virtual server whose grants hide nothing: every caller gets the same list.
    await createVirtualServer(stack, "open", [{ upstream: "rec", tool: "echo" }]);
    await stack.admin.post("/v1/virtual-servers/open/grants", { grantId: "alice", subject: { consumer: "alice" } });
    await stack.admin.post("/v1/virtual-servers/open/grants", { grantId: "bob", subject: { consumer: "bob" } });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("a 2.4 client pinned to 2026-07-28 and a 1.32.2 client use the same URL side by side", async () => {
    const agent = await modern(aliceKey);
    expect(agent.getNegotiatedProtocolVersion()).toBe(REVISION);
    await using legacy = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("modern")), { requestInit: { headers: { authorization: `Bearer ${aliceKey}` } } }));
    const [modernList, legacyList] = await Promise.all([agent.listTools(), legacy.listTools()]);
    expect(modernList.tools.map((t) => t.name)).toEqual(legacyList.tools.map((t) => t.name));
    const [modernSum, legacySum] = await Promise.all([
      agent.callTool({ name: names["rec/add"]!, arguments: { a: 2, b: 3 } }),
      legacy.callTool({ name: names["rec/add"]!, arguments: { a: 2, b: 3 } }),
    ]);
    expect(modernSum.structuredContent).toEqual({ sum: 5 });
    expect(modernSum.content).toEqual(legacySum.content);
    expect(agent.getServerVersion()?.name).toBe("manifold-modern");
  });

  test("progress is relayed on the call's own stream with the agent's token", async () => {
    const agent = await modern(aliceKey);
    const updates: number[] = [];
    const result = await agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 90, steps: 3 } }, { onprogress: (p) => updates.push(p.progress) });
    expect(result.content).toEqual([{ type: "text", text: "slept 90 ms" }]);
    expect(updates).toEqual([1, 2, 3]);
  });

  test("closing the call's stream cancels it at the upstream", async () => {
    const agent = await modern(aliceKey);
    const controller = new AbortController();
    const tag = `modern-cancel-${fastPath}`;
    const call = agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 5_000, tag } }, { signal: controller.signal });
    await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === tag) ? true : undefined));
    controller.abort("changed my mind");
    await expect(call).rejects.toThrow();
    await eventually(() => (recording.cancelled.includes(tag) ? true : undefined), 3_000);
  });

  test("a change made through the admin API reaches an open subscriptions/listen stream", async () => {
    const agent = await modern(aliceKey);
    let changed = 0;
    agent.setNotificationHandler("notifications/tools/list_changed", () => void changed++);
    const subscription = await agent.listen({ toolsListChanged: true });
    expect(subscription.honoredFilter).toMatchObject({ toolsListChanged: true });
    const res = await stack.admin.request("PUT", "/v1/virtual-servers/modern", { description: `changed ${fastPath}` });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    await eventually(() => (changed > 0 ? true : undefined), 5_000);
    await subscription.close();
  });

  test("errors: unknown tool, denied tool (as unknown), and server/discover", async () => {
    const alice = await modern(aliceKey);
    const bob = await modern(bobKey);
    const unknown = await rpcError(alice.callTool({ name: "nope", arguments: {} }));
    expect(unknown.code).toBe(-32602);
    const denied = await rpcError(bob.callTool({ name: names["rec/add"]!, arguments: { a: 1, b: 1 } }));
    expect(denied.code).toBe(-32602);
    expect(denied.message).toBe(unknown.message.replace("'nope'", `'${names["rec/add"]}'`));
    const discover = await raw(aliceKey, "server/discover");
    expect(discover.status).toBe(200);
    expect(discover.body.result).toMatchObject({ supportedVersions: [REVISION], capabilities: { tools: { listChanged: true } }, resultType: "complete" });
  });

  test("tools/list: resultType, ttlMs, a deterministic order, cacheScope public only where every caller, with credentials or without, gets the same list", async () => {
    const alice = await raw(aliceKey, "tools/list");
    const again = await raw(aliceKey, "tools/list");
    const bob = await raw(bobKey, "tools/list");
    expect(alice.status).toBe(200);
    // Attack: Alice's list hides nothing from her, but Bob's grant hides `add`: marked public, a shared
    // cache keyed by the URL could hand Alice's list to Bob, with the tool his grant hides.
    expect(alice.body.result).toMatchObject({ resultType: "complete", cacheScope: "private", _meta: { "io.modelcontextprotocol/serverInfo": { name: "manifold-modern" } } });
    expect(alice.body.result.tools.map((t: { name: string }) => t.name)).toContain(names["rec/add"]);
    const open = await Promise.all([aliceKey, bobKey].map((key) => raw(key, "tools/list", {}, {}, stack.mcpUrl("open"))));
    // Private too where no grant hides anything: only granted callers may read it (helper-182; public
    // only where callers without credentials get it alike, listCacheScope.e2e).
    expect(open.map((o) => o.body.result.cacheScope)).toEqual(["private", "private"]);
    expect(open[1]!.body.result.tools).toEqual(open[0]!.body.result.tools);
    expect(alice.body.result.ttlMs).toBeGreaterThan(0);
    const order = alice.body.result.tools.map((t: { name: string }) => t.name);
    expect(order).toEqual([...order].sort((a: string, b: string) => a.localeCompare(b)));
    expect(again.body).toEqual(alice.body);
    expect(bob.body.result.cacheScope).toBe("private");
    expect(bob.body.result.tools.map((t: { name: string }) => t.name)).not.toContain(names["rec/add"]);
    expect(alice.headers.get("mcp-session-id")).toBeNull();
  });

  test("tools/call results carry resultType; a tool error is a result", async () => {
    const sum = await raw(aliceKey, "tools/call", { name: names["rec/add"]!, arguments: { a: 1, b: 2 } });
    expect(sum.body.result).toMatchObject({ resultType: "complete", structuredContent: { sum: 3 }, _meta: { "io.modelcontextprotocol/serverInfo": { name: "manifold-modern" } } });
  });

  test("the upstream sees its own tool name and none of the agent's headers or envelope, but the rest of its _meta", async () => {
    const tag = `hop-${fastPath}`;
    const answer = await raw(aliceKey, "tools/call", { name: names["rec/slow"]!, arguments: { ms: 1, tag }, _meta: { traceparent: `00-${"a".repeat(32)}-${"b".repeat(16)}-01`, "com.example/note": "kept" } });
    expect(answer.body.result.content).toEqual([{ type: "text", text: "slept 1 ms" }]);
    const seen = recording.calls.find((c) => (c.arguments as { tag?: string }).tag === tag)!;
    expect(seen.tool).toBe("slow");
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers["mcp-name"] === undefined || seen.headers["mcp-name"] === "slow").toBe(true);
    expect(JSON.stringify(seen.headers)).not.toContain(aliceKey);
    for (const key of ["io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities", "io.modelcontextprotocol/clientInfo", "traceparent"]) {
      expect(seen.meta ?? {}).not.toHaveProperty([key]);
    }
    expect(seen.meta).toMatchObject({ "com.example/note": "kept" });
  });

  test.each([
    ["Mcp-Name disagreeing with the body", { "mcp-name": "other" }],
    ["Mcp-Method disagreeing with the body", { "mcp-method": "tools/list" }],
    ["a missing MCP-Protocol-Version", { "mcp-protocol-version": "" }],
  ])("%s → 400 HeaderMismatch (-32020), nothing goes upstream", async (_what, headers) => {
    const before = recording.calls.length;
    const answer = await raw(aliceKey, "tools/call", { name: names["rec/echo"]!, arguments: { message: "mismatch" } }, headers);
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe(-32020);
    expect(recording.calls.length).toBe(before);
  });

  test("a tools/call without a name is invalid params, whichever path answers", async () => {
    const answer = await raw(aliceKey, "tools/call", { arguments: {} });
    expect(answer.body.error.code).toBe(-32602);
  });

  test("an unsupported revision → 400 UnsupportedProtocolVersion (-32022) listing what is served", async () => {
    const answer = await raw(aliceKey, "tools/list", { _meta: { "io.modelcontextprotocol/protocolVersion": "2099-01-01" } }, { "mcp-protocol-version": "2099-01-01" });
    expect(answer.status).toBe(400);
    expect(answer.body.error.code).toBe(-32022);
    expect(answer.body.error.data.supported).toEqual([REVISION]);
  });

  test("the edge's rules hold for both eras: no credentials is 401, another's Host is 403", async () => {
    const res = await fetch(stack.mcpUrl("modern"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": REVISION, "mcp-method": "tools/list" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: envelope } }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { data: { code: string } } }).error.data.code).toBe("unauthorized");
    const { port } = new URL(stack.gatewayUrl);
    const status = await new Promise<number>((resolve, reject) => {
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: envelope } });
      const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${aliceKey}`, "mcp-protocol-version": REVISION, "mcp-method": "tools/list", host: `rebind.evil.example:${port}` };
      const req = httpRequest({ host: "127.0.0.1", port, path: "/mcp/modern", method: "POST", headers }, (res) => (res.resume(), resolve(res.statusCode!)));
      req.on("error", reject);
      req.end(body);
    });
    expect(status).toBe(403);
  });

  test("stateless: any replica answers, with the session directory gone", async () => {
    // The 2025 lane needs the shared session directory; the 2026 lane never reads it.
    const operator = await connectAs(nats, "operator");
    const second = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath });
    try {
      await (await jetstreamManager(operator)).streams.delete(`KV_${KvBucket.sessions}`);
      const listed = await raw(aliceKey, "tools/list", {}, {}, second.mcpUrl("modern"));
      expect(listed.status).toBe(200);
      const called = await raw(aliceKey, "tools/call", { name: names["rec/echo"]!, arguments: { message: "replica" } }, {}, second.mcpUrl("modern"));
      expect(called.body.result.content).toEqual([{ type: "text", text: "echo: replica" }]);
    } finally {
      await second.close();
      await operator.close();
    }
  });
});
