import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const HEADER = "X-Manifold-Upstream-Headers";

describe("per-request pass-through headers", () => {
  let nats: NatsServer;
  let stack: Stack;
  let a: RecordingUpstream;
  let b: RecordingUpstream;
  let names: Record<string, string>;

  const agentWith = (headers: Record<string, string>) =>
    connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("pass")), { requestInit: { headers } }));

  beforeAll(async () => {
    nats = await startNats();
    [stack, a, b] = await Promise.all([startStack(nats.url), startRecordingUpstream("a"), startRecordingUpstream("b")]);
    await registerUpstreams(
      stack,
      { name: "up-a", transport: { type: "streamable-http", url: a.url } },
      { name: "up-b", transport: { type: "streamable-http", url: b.url }, options: { passthroughHeaders: ["Authorization", "X-Tenant"] } },
    );
    names = await createVirtualServer(stack, "pass", [
      { upstream: "up-a", tool: "echo" },
      { upstream: "up-b", tool: "echo" },
    ]);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all([a?.close(), b?.close()]);
    await nats?.stop();
  });

  test("each upstream gets only its own entry, and never the gateway's inbound Authorization", async () => {
    await using agent = await agentWith({
      authorization: "Bearer for-the-gateway",
      [HEADER]: JSON.stringify({ "up-a": { Authorization: "Bearer secret-a" }, "up-b": { Authorization: "Bearer secret-b", "X-Tenant": "t1" } }),
    });
    await agent.callTool({ name: names["up-a/echo"]!, arguments: { message: "1" } });
    await agent.callTool({ name: names["up-b/echo"]!, arguments: { message: "2" } });
    const seenByA = a.calls.at(-1)!.headers;
    const seenByB = b.calls.at(-1)!.headers;
    expect(seenByA.authorization).toBe("Bearer secret-a");
    expect(seenByA["x-tenant"]).toBeUndefined();
    expect(seenByB.authorization).toBe("Bearer secret-b");
    expect(seenByB["x-tenant"]).toBe("t1");
    const everything = JSON.stringify([...a.calls, ...b.calls].map((c) => c.headers));
    expect(everything).not.toContain("for-the-gateway");
    expect(JSON.stringify(a.calls.map((c) => c.headers))).not.toContain("secret-b");
    expect(JSON.stringify(b.calls.map((c) => c.headers))).not.toContain("secret-a");
  });

  test("a call with a progress token (the SDK lane) gets the headers parsed at the edge too", async () => {
    await using agent = await agentWith({ [HEADER]: JSON.stringify({ "up-b": { "X-Tenant": "sdk-lane" } }) });
    await agent.callTool({ name: names["up-b/echo"]!, arguments: { message: "p" } }, undefined, { onprogress: () => undefined });
    expect(b.calls.at(-1)!.headers["x-tenant"]).toBe("sdk-lane");
  });

  test("two users' tokens never cross and never share an upstream session", async () => {
    await using alice = await agentWith({ [HEADER]: JSON.stringify({ "up-a": { Authorization: "Bearer alice" } }) });
    await using bob = await agentWith({ [HEADER]: JSON.stringify({ "up-a": { Authorization: "Bearer bob" } }) });
    const before = a.calls.length;
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? alice : bob).callTool({ name: names["up-a/echo"]!, arguments: { message: i % 2 ? "alice" : "bob" } }),
      ),
    );
    const calls = a.calls.slice(before);
    expect(calls).toHaveLength(10);
    for (const call of calls) {
      expect(call.headers.authorization).toBe(`Bearer ${(call.arguments as { message: string }).message}`);
    }
    const sessionsOf = (user: string) => new Set(calls.filter((c) => c.headers.authorization === `Bearer ${user}`).map((c) => c.headers["mcp-session-id"]));
    expect(sessionsOf("alice").size).toBe(1);
    expect(sessionsOf("bob").size).toBe(1);
    expect([...sessionsOf("alice")][0]).not.toBe([...sessionsOf("bob")][0]);
  });

  test("attack: an upstream may not let agents pass a header the transport owns (Mcp-Session-Id named another caller's upstream session)", async () => {
    for (const [options, transport, name] of [
      [{ passthroughHeaders: ["Authorization", "Mcp-Session-Id"] }, {}, "Mcp-Session-Id"],
      [{ passthroughHeaders: ["Host"] }, {}, "Host"],
      [{}, { headers: { "Content-Length": "0" } }, "Content-Length"],
    ] as const) {
      const res = await stack.admin.post("/v1/upstreams", { name: "up-owned", transport: { type: "streamable-http", url: a.url, ...transport }, options });
      expect(res.status, name).toBe(400);
      expect(res.body.error.message).toContain(`'${name}'`);
    }
    expect((await stack.admin.get("/v1/upstreams/up-owned")).status).toBe(404);
  });

  test.each([
    ["invalid JSON", "{nope", "not valid JSON"],
    ["not an object", "[1,2]", "must be a JSON object"],
    ["an unknown upstream", JSON.stringify({ ghost: { Authorization: "x" } }), "'ghost'"],
    ["a header the upstream does not allow", JSON.stringify({ "up-a": { "X-Tenant": "t1" } }), "'X-Tenant'"],
    ["a non-string value", JSON.stringify({ "up-a": { Authorization: 42 } }), "'Authorization'"],
  ])("%s is a 400 with a JSON-RPC error naming the problem", async (_what, value, expected) => {
    const res = await fetch(stack.mcpUrl("pass"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", [HEADER]: value },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { jsonrpc: string; error: { code: number; message: string; data: { code: string } } };
    expect(body.jsonrpc).toBe("2.0");
    expect(body.error.code).toBe(-32602);
    expect(body.error.data.code).toBe("invalid_upstream_headers");
    expect(body.error.message).toContain(expected);
    expect(body.error.message).not.toContain("secret");
  });
});
