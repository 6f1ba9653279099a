import type { NatsConnection } from "@manifold/bus";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

/**
 * Anonymous access is two keys turned by the operator: an anonymous grant on a virtual server
 * and `GATEWAY_ALLOW_ANONYMOUS=true` on the gateway. Each attack here turns one key or tries to
 * reach past the door it opens.
 */
describe("anonymous access, only when an operator configures it", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let names: Record<string, string>;
  /** A second replica on the same registry, without GATEWAY_ALLOW_ANONYMOUS. */
  let closed: Gateway;
  let closedNc: NatsConnection;
  let closedUrl: string;
  let bobKey: string;

  const post = (url: string, headers: Record<string, string> = {}, body: unknown = INIT) =>
    fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(body) });

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_ALLOW_ANONYMOUS: "true" }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "public", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "add" },
    ]);
    await createVirtualServer(stack, "private", [{ upstream: "rec", tool: "echo" }]);
    await createVirtualServer(stack, "limited", [{ upstream: "rec", tool: "echo" }]);
    expect((await stack.admin.post("/v1/virtual-servers/public/grants", { grantId: "anyone", subject: { anonymous: true }, deniedTools: [names["rec/add"]] })).status).toBe(201);
    expect((await stack.admin.post("/v1/virtual-servers/limited/grants", { grantId: "anyone", subject: { anonymous: true }, rateLimitPerMinute: 2 })).status).toBe(201);
    expect((await stack.admin.post("/v1/consumers", { name: "bob" })).status).toBe(201);
    bobKey = (await stack.admin.post("/v1/consumers/bob/keys", {})).body.key;
    expect((await stack.admin.post("/v1/virtual-servers/private/grants", { grantId: "bob", subject: { consumer: "bob" } })).status).toBe(201);

    closedNc = await connectAs(nats, "gateway", "gateway-closed");
    const config = loadGatewayConfig({ ...busEnv(nats, "gateway"), LOG_LEVEL: "silent" });
    closed = await buildGateway({ config, logger: createLogger({ component: "gateway-closed", level: "silent" }), nc: closedNc });
    await closed.follower.caughtUp;
    await closed.app.listen({ port: 0, host: "127.0.0.1" });
    closedUrl = `http://127.0.0.1:${(closed.app.server.address() as AddressInfo).port}`;
    await eventually(async () => ((await post(stack.mcpUrl("limited"))).status === 200 ? true : undefined));
  });

  afterAll(async () => {
    await closed?.close();
    await closedNc?.close();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("the registry accepts an anonymous subject only in its one exact form", async () => {
    for (const subject of [{ anonymous: false }, { anonymous: "true" }, { anonymous: true, consumer: "bob" }]) {
      const res = await stack.admin.post("/v1/virtual-servers/private/grants", { grantId: "odd", subject });
      expect(res.status, JSON.stringify(subject)).toBe(400);
    }
  });

  test("without the gateway flag an anonymous grant admits no one: 401 as ever", async () => {
    expect(loadGatewayConfig({ ...busEnv(nats, "gateway") }).GATEWAY_ALLOW_ANONYMOUS).toBe(false);
    const res = await post(`${closedUrl}/mcp/public`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="manifold"');
    expect(((await res.json()) as { error: { data: { code: string } } }).error.data.code).toBe("unauthorized");
  });

  test("with the flag, a virtual server without an anonymous grant answers exactly as to any request without credentials", async () => {
    const answers = await Promise.all(["private", "no-such-server"].map(async (vs) => {
      const res = await post(stack.mcpUrl(vs));
      return { status: res.status, challenge: res.headers.get("www-authenticate"), body: await res.json() };
    }));
    expect(answers[0]!.status).toBe(401);
    expect(answers[0]!.challenge).toBe('Bearer realm="manifold"');
    // Existing or not, granted to someone else or not: nothing to tell apart.
    expect(answers[1]).toEqual(answers[0]);
  });

  test("an admitted anonymous caller sees and calls only what the anonymous grant allows, as the principal 'anonymous'", async () => {
    await using client = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("public"))));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([names["rec/echo"]]);
    expect((await client.callTool({ name: names["rec/echo"]!, arguments: { message: "hi" } })).content).toEqual([{ type: "text", text: "echo: hi" }]);
    const denied = await client.callTool({ name: names["rec/add"]!, arguments: { a: 1, b: 2 } }).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: -32602 });
    const audited = await eventually(async () => {
      const { items } = (await stack.admin.get("/v1/audit?virtualServer=public")).body as { items: { consumer: string; tool: string }[] };
      return items.some((i) => i.tool === "echo") ? items : undefined;
    });
    expect(new Set(audited.map((i) => i.consumer))).toEqual(new Set(["anonymous"]));
  });

  test("an anonymous session cannot be carried to another virtual server", async () => {
    await using client = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("public"))));
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: names["rec/echo"], arguments: { message: "x" } } };
    const res = await post(stack.mcpUrl("private"), { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" }, call);
    expect(res.status).toBe(401);
    expect(recording.calls.filter((c) => (c.arguments as { message?: string }).message === "x")).toEqual([]);
  });

  test("credentials presented are always checked: a bad or empty one is 401, never downgraded to anonymous", async () => {
    for (const authorization of ["Bearer mk_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "Bearer not-a-token", "Basic Ym9iOnB3", ""]) {
      const res = await post(stack.mcpUrl("public"), { authorization });
      expect(res.status, authorization).toBe(401);
    }
    const res = await post(stack.mcpUrl("public"), { authorization: "Bearer not-a-token" });
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  test("an anonymous grant does not cover an authenticated caller: it needs a grant of its own", async () => {
    expect((await post(stack.mcpUrl("public"), { authorization: `Bearer ${bobKey}` })).status).toBe(404);
    expect((await post(stack.mcpUrl("private"), { authorization: `Bearer ${bobKey}` })).status).toBe(200);
  });

  test("rate limits apply to anonymous callers, all of them counted as one", async () => {
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 45_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 200));
    await using one = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("limited"))));
    await using two = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("limited"))));
    const call = (client: typeof one) => client.callTool({ name: names["rec/echo"]!, arguments: { message: "counted" } });
    await call(one);
    await call(two);
    const limited = (await call(one).catch((e: unknown) => e)) as { code: number; message: string };
    expect(limited.code).toBe(429);
    expect(limited.message).toContain("rate limit of 2 calls per minute");
  });
});
