import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { spawnGateways } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * attack (helper-110): a virtual server deleted and created again under its name took over the
 * old one's 2025 sessions from the session directory: each replica dropped its own copies when
 * the delete arrived, but the directory's records still named the virtual server by name, so the
 * next request with an old Mcp-Session-Id was adopted again, on any replica, and served by the
 * new virtual server (with its new tools and grants) under a session negotiated with the old.
 * A session is bound to what its virtual server is (its creation in the registry's log), not
 * what it is called.
 */
describe("a session of a deleted virtual server is not served by one created again under its name", () => {
  let nats: NatsServer;
  let stack: Stack;
  let gateways: Awaited<ReturnType<typeof spawnGateways>> | undefined;
  let recording: RecordingUpstream;
  let key: string;
  /** The stack's own gateway and two gateway processes: three replicas sharing one session directory. */
  let urls: string[];

  beforeAll(async () => {
    nats = await startNats();
    const env = { GATEWAY_AUTH: "required" };
    [stack, recording] = await Promise.all([startStack(nats.url, env), startRecordingUpstream()]);
    gateways = await spawnGateways(nats, env);
    urls = [stack.mcpUrl("desk"), ...gateways.ports.map((port) => `http://127.0.0.1:${port}/mcp/desk`)];
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    await stack.admin.post("/v1/consumers", { name: "alice" });
    key = (await stack.admin.post("/v1/consumers/alice/keys", {})).body.key;
  });
  afterAll(async () => {
    await gateways?.stop();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  const initialize = async (url: string) => {
    const opened = await eventually(async () => {
      const init = await post(url, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "agent", version: "1" } } });
      return init.status === 200 ? init.session! : undefined;
    }, 10_000, 50);
    await post(url, { jsonrpc: "2.0", method: "notifications/initialized" }, opened);
    return opened;
  };
  const post = async (url: string, message: unknown, sessionId?: string) => {
    const res = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        authorization: `Bearer ${key}`,
        ...(sessionId ? { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-11-25" } : {}),
      },
      body: JSON.stringify(message),
    });
    const raw = await res.text();
    const text = raw.startsWith("event:") ? raw.split("\n").find((line) => line.startsWith("data: "))!.slice(6) : raw;
    return { status: res.status, session: res.headers.get("mcp-session-id"), body: (text.startsWith("{") ? JSON.parse(text) : {}) as { result?: { tools?: unknown[] }; error?: { code: number; data?: { code?: string } } } };
  };
  const listTools = (url: string, sessionId: string) => post(url, { jsonrpc: "2.0", id: 1, method: "tools/list" }, sessionId);
  const create = async () => {
    await createVirtualServer(stack, "desk", [{ upstream: "rec", tool: "echo" }]);
    await stack.admin.post("/v1/virtual-servers/desk/grants", { grantId: "alice", subject: { consumer: "alice" } });
  };
  /** Every replica answers as `ready` says, once the registry's events reached it. */
  const onEveryReplica = (ready: (answer: Awaited<ReturnType<typeof post>>) => boolean, sessionId: string, at = urls) =>
    eventually(async () => ((await Promise.all(at.map((url) => listTools(url, sessionId)))).every(ready) ? true : undefined), 10_000, 50);

  test("its Mcp-Session-Id is unknown on every replica after the delete, also once the name is created again", async () => {
    await create();
    const opened = await eventually(async () => {
      const init = await post(urls[1]!, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "old", version: "1" } } });
      return init.status === 200 ? init.session! : undefined;
    }, 10_000, 50);
    await post(urls[1]!, { jsonrpc: "2.0", method: "notifications/initialized" }, opened);
    // Served by every replica: the other two adopt it from the directory.
    await onEveryReplica((answer) => answer.status === 200 && answer.body.result?.tools?.length === 1, opened);

    expect((await stack.admin.delete("/v1/virtual-servers/desk")).status).toBeLessThan(300);
    await onEveryReplica((answer) => answer.status === 404, opened);
    await create();
    // The new virtual server is served to new sessions on every replica…
    const fresh = await eventually(async () => {
      const init = await post(urls[2]!, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "new", version: "1" } } });
      return init.status === 200 ? init.session! : undefined;
    }, 10_000, 50);
    await post(urls[2]!, { jsonrpc: "2.0", method: "notifications/initialized" }, fresh);
    await onEveryReplica((answer) => answer.status === 200, fresh);
    // …but the old session is not, by any replica: before, each adopted it again from the directory (200).
    for (const url of urls) {
      const answer = await listTools(url, opened);
      expect(answer.status, url).toBe(404);
      expect(answer.body.error).toMatchObject({ code: -32001, data: { code: "session_not_found" } });
    }
  });

  test("nor is a session of an environment deleted and set again under its name, once the virtual server is promoted there again", async () => {
    const inProd = urls.map((url) => url.replace("/mcp/desk", "/mcp/prod/desk"));
    const setProd = async () => {
      expect((await stack.admin.request("PUT", "/v1/environments/prod", { bindings: {} })).status).toBeLessThan(300);
      expect((await stack.admin.post("/v1/virtual-servers/desk/promote", { from: "default", to: "prod", force: true })).status).toBe(200);
    };
    await setProd();
    const opened = await initialize(inProd[0]!);
    await onEveryReplica((answer) => answer.status === 200, opened, inProd);
    expect((await stack.admin.delete("/v1/environments/prod")).status).toBeLessThan(300);
    await onEveryReplica((answer) => answer.status === 404, opened, inProd);
    await setProd();
    const fresh = await initialize(inProd[1]!);
    await onEveryReplica((answer) => answer.status === 200, fresh, inProd);
    for (const url of inProd) expect((await listTools(url, opened)).status, url).toBe(404);
  });
});
