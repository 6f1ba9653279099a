import type { NatsServer } from "@manifold/nats-server";
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * attack (helper-110): the bound on a replica's connections (`GATEWAY_MAX_CONNECTIONS`) made room
 * for a new connection only from idle ones and ones still receiving a body: long-lived streams
 * (2026-07-28 listens, 2025 GET streams) are neither, and a caller may hold 100 listens and a GET
 * stream for each of its 1,000 sessions, so about six consumers filled a replica's 8,192 places
 * and every other tenant's new connection was closed unanswered. At the bound, the caller holding
 * the most streams now gives up its oldest one. Here the bound is 12.
 */
const MAX_CONNECTIONS = 12;
const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "agent", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

describe("long-lived streams share a replica's connections by caller", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let keys: Record<string, string>;
  const held: { req: ClientRequest; res: IncomingMessage }[] = [];

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_CONNECTIONS: String(MAX_CONNECTIONS) }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    await createVirtualServer(stack, "shared", [{ upstream: "rec", tool: "echo" }]);
    keys = await grantedConsumers(stack, "shared", ["alice", "mallory"]);
  });
  afterAll(async () => {
    for (const { req } of held) req.destroy();
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  /** One HTTP request on a connection of its own; one the gateway closes unanswered has no `res`. */
  const exchange = (key: string, method: "GET" | "POST", headers: Record<string, string>, body?: string) =>
    new Promise<{ req: ClientRequest; res: IncomingMessage | undefined; error?: string }>((resolve) => {
      const req = httpRequest(stack.mcpUrl("shared"), {
        method,
        agent: false,
        timeout: 5_000,
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, ...headers },
      });
      req.on("response", (res) => resolve({ req, res }));
      req.on("timeout", () => req.destroy(new Error("no answer in 5 s")));
      req.on("error", (error) => resolve({ req, res: undefined, error: String(error) }));
      req.end(body);
    });
  const send = (key: string, method: string, params: Record<string, unknown>) =>
    exchange(key, "POST", { "mcp-protocol-version": "2026-07-28", "mcp-method": method }, JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: META } }));
  const kept = (opened: { req: ClientRequest; res: IncomingMessage | undefined; error?: string }) => {
    expect(opened.res?.statusCode, opened.error).toBe(200);
    const stream = { req: opened.req, res: opened.res!, ended: false };
    opened.res!.on("close", () => (stream.ended = true)).resume();
    held.push(stream);
    return stream;
  };
  const listen = async (key: string) => kept(await send(key, "subscriptions/listen", { notifications: { toolsListChanged: true } }));
  /** A 2025 session's GET stream. */
  const getStream = async (key: string) => {
    const init = await exchange(key, "POST", {}, JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "x", version: "1" } } }));
    init.res!.resume();
    const session = { "mcp-session-id": String(init.res!.headers["mcp-session-id"]), "mcp-protocol-version": "2025-11-25" };
    (await exchange(key, "POST", session, JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }))).res!.resume();
    return kept(await exchange(key, "GET", { ...session, accept: "text/event-stream" }));
  };
  const endAll = async () => {
    for (const { req } of held.splice(0)) req.destroy();
    await new Promise((r) => setTimeout(r, 200));
  };

  test("one caller's streams filling the bound give way to another tenant's request, oldest first; the other's own stream stays", async () => {
    const alices = await listen(keys.alice!);
    const mallorys = [];
    for (let i = 1; i < MAX_CONNECTIONS; i++) mallorys.push(await listen(keys.mallory!));

    const list = await send(keys.alice!, "tools/list", {});
    // Before: closed unanswered (socket hang up): every place was a stream, none idle, none receiving.
    expect(list.res?.statusCode, list.error).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    expect(mallorys[0]!.ended).toBe(true);
    expect(mallorys.slice(1).every((s) => !s.ended)).toBe(true);
    expect(alices.ended).toBe(false);
  });

  test("2025 GET streams give way alike", async () => {
    await endAll();
    const alices = await listen(keys.alice!);
    const mallorys = [];
    for (let i = 1; i < MAX_CONNECTIONS; i++) mallorys.push(await getStream(keys.mallory!));
    const list = await send(keys.alice!, "tools/list", {});
    expect(list.res?.statusCode, list.error).toBe(200);
    await new Promise((r) => setTimeout(r, 100));
    expect(mallorys.map((s) => s.ended)).toEqual([true, ...mallorys.slice(1).map(() => false)]);
    expect(alices.ended).toBe(false);
  });
});
