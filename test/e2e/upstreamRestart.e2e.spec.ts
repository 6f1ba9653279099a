import type { NatsConnection } from "@manifold/bus";
import { Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const HEADER = "X-Manifold-Upstream-Headers";

/**
 * An HTTP upstream that restarts forgets every session. The transport spec: a client that
 * gets 404 for a request with an Mcp-Session-Id starts a new session (server-everything
 * answers 400 "No valid session ID provided" instead); the connector does so and retries.
 */
describe("an HTTP upstream restarted between two calls", () => {
  let nats: NatsServer;
  let stack: Stack;
  let everything: SpawnedUpstream;
  let bus: NatsConnection;
  let names: Record<string, string>;
  let shared: DisposableClient;
  let personal: DisposableClient;
  const health: string[] = [];
  const discovered: number[] = [];

  beforeAll(async () => {
    nats = await startNats();
    [stack, everything] = await Promise.all([startStack(nats.url, { HEALTH_HEARTBEAT_MS: "200" }), spawnEverything("streamableHttp")]);
    await registerUpstreams(stack, { name: "everything", transport: { type: "streamable-http", url: everything.url } });
    names = await createVirtualServer(stack, "restart", [{ upstream: "everything", tool: "echo" }]);
    shared = await connectHttp(stack.mcpUrl("restart"));
    personal = await connectClient(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl("restart")), {
        requestInit: { headers: { [HEADER]: JSON.stringify({ everything: { Authorization: "Bearer alice" } }) } },
      }),
    );
    bus = await connectAs(nats, "operator", "observer");
    bus.subscribe(`${Subjects.upstreamHealth("everything", "*")}`, { callback: (_e, msg) => void health.push((msg.json() as { status: string }).status) });
    bus.subscribe(Subjects.registryDiscovered("*"), { callback: () => void discovered.push(Date.now()) });
  });

  afterAll(async () => {
    await Promise.all([shared?.close(), personal?.close()]);
    await bus?.close();
    await stack?.close();
    await everything?.stop();
    await nats?.stop();
  });

  const echo = async (client: DisposableClient, message: string) => (await client.callTool({ name: names["everything/echo"]!, arguments: { message } })).content;

  test("the next call through a shared and a pass-through session succeeds, health stays up, tools are rediscovered", async () => {
    expect(await echo(shared, "before")).toEqual([{ type: "text", text: "Echo: before" }]);
    expect(await echo(personal, "before")).toEqual([{ type: "text", text: "Echo: before" }]);

    await everything.stop();
    everything = await spawnEverything("streamableHttp", everything.port);
    // The old sessions' event streams notice the restart on their own schedule; the calls must not wait for that.
    health.length = 0;
    const restartedAt = Date.now();

    expect(await echo(shared, "after")).toEqual([{ type: "text", text: "Echo: after" }]);
    expect(await echo(personal, "after")).toEqual([{ type: "text", text: "Echo: after" }]);
    expect(await echo(shared, "again")).toEqual([{ type: "text", text: "Echo: again" }]);
    expect(await echo(personal, "again")).toEqual([{ type: "text", text: "Echo: again" }]);

    // The new shared session's tools are reported to the registry, as after a reconnect.
    await eventually(() => (discovered.some((at) => at >= restartedAt) ? true : undefined));
    const { body } = await stack.admin.get("/v1/upstreams/everything");
    expect(body.health.status).toBe("up");
    expect(health).not.toContain("down");
  });

  test("a tool-list request through the SDK client renews the forgotten session too", async () => {
    await everything.stop();
    everything = await spawnEverything("streamableHttp", everything.port);
    health.length = 0;
    const { body } = await stack.admin.post("/v1/upstreams/everything/discover", {});
    expect(body.discovery, JSON.stringify(body.discovery)).toMatchObject({ status: "ok" });
    expect(await echo(shared, "listed")).toEqual([{ type: "text", text: "Echo: listed" }]);
    expect(health).not.toContain("down");
  });
});
