import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, eventually } from "../helpers/mcp.js";
import { spawnGateways } from "../helpers/replicas.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { KvBucket } from "@manifold/contracts";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

const IDLE_MS = 3_000;

describe("sessions across gateway replicas, without sticky routing", () => {
  let nats: NatsServer;
  let stack: Stack;
  let gateways: Awaited<ReturnType<typeof spawnGateways>> | undefined;
  let recording: RecordingUpstream;
  let names: Record<string, string>;
  let ports: number[];
  let aliceKey: string;
  let bobKey: string;
  const hits: number[] = [];

  /** A real SDK client whose every HTTP request goes to the next replica in turn. */
  const roundRobinClient = (key: string) => {
    let next = 0;
    const fetchAlternating = (url: string | URL, init?: RequestInit) => {
      const target = new URL(url);
      const port = ports[next++ % ports.length]!;
      hits.push(port);
      target.port = String(port);
      return fetch(target, init);
    };
    return connectClient(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared")), { fetch: fetchAlternating, requestInit: { headers: { authorization: `Bearer ${key}` } } }),
    );
  };

  /** A real SDK client whose HTTP requests all go to one replica, the one last pinned (the first to begin with). */
  const pinnedClient = async (key: string) => {
    let port = ports[0]!;
    const pinned = (url: string | URL, init?: RequestInit) => {
      const target = new URL(url);
      target.port = String(port);
      return fetch(target, init);
    };
    const agent = await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared")), { fetch: pinned, requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    return { agent, pin: (replica: number) => void (port = ports[replica]!) };
  };

  beforeAll(async () => {
    nats = await startNats();
    const env = { GATEWAY_AUTH: "required", SESSION_IDLE_MS: String(IDLE_MS) };
    [stack, recording] = await Promise.all([startStack(nats.url, env), startRecordingUpstream()]);
    // Two gateway processes behind a "load balancer" that alternates: no stickiness.
    gateways = await spawnGateways(nats, env);
    ports = gateways.ports;

    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "shared", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "slow" },
    ]);
    for (const name of ["alice", "bob"]) {
      await stack.admin.post("/v1/consumers", { name });
      await stack.admin.post("/v1/virtual-servers/shared/grants", { grantId: name, subject: { consumer: name } });
    }
    aliceKey = (await stack.admin.post("/v1/consumers/alice/keys", {})).body.key;
    bobKey = (await stack.admin.post("/v1/consumers/bob/keys", {})).body.key;
  });

  afterAll(async () => {
    await gateways?.stop();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("any replica serves any request of a live session: calls, progress, notifications, cancellation", async () => {
    await using agent = await roundRobinClient(aliceKey);
    const changed = new Promise<void>((resolve) => agent.setNotificationHandler(ToolListChangedNotificationSchema, () => resolve()));

    for (let i = 0; i < 6; i++) {
      expect((await agent.listTools()).tools).toHaveLength(2);
      expect((await agent.callTool({ name: names["rec/echo"]!, arguments: { message: `m${i}` } })).content).toEqual([{ type: "text", text: `echo: m${i}` }]);
    }
    expect(new Set(hits)).toEqual(new Set(ports));

    const progress: number[] = [];
    await agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 90, steps: 3 } }, undefined, { onprogress: (p) => progress.push(p.progress) });
    expect(progress).toEqual([1, 2, 3]);

    // The notification reaches the client on its stream, whichever replica holds it.
    await stack.admin.post("/v1/virtual-servers/shared/tools", { tools: [{ upstream: "rec", tool: "add" }] });
    await changed;
    expect((await agent.listTools()).tools).toHaveLength(3);

    // The cancellation is sent to one replica while the call runs through the other.
    const controller = new AbortController();
    const call = agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 5_000, tag: "cross-cancel" } }, undefined, { signal: controller.signal });
    await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "cross-cancel") ? true : undefined));
    controller.abort("no longer needed");
    await expect(call).rejects.toThrow();
    await eventually(() => (recording.cancelled.includes("cross-cancel") ? true : undefined), 3_000);
  });

  test("a session is bound to its principal on every replica", async () => {
    await using alice = await roundRobinClient(aliceKey);
    await alice.listTools();
    const sessionId = (alice.transport as StreamableHTTPClientTransport).sessionId!;
    for (const port of ports) {
      const res = await fetch(`http://127.0.0.1:${port}/mcp/shared`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${bobKey}`, "mcp-session-id": sessionId },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(res.status).toBe(404);
    }
  });

  test("DELETE on one replica ends the session on all of them", async () => {
    const agent = await roundRobinClient(aliceKey);
    await agent.listTools();
    await agent.listTools();
    const transport = agent.transport as StreamableHTTPClientTransport;
    const sessionId = transport.sessionId!;
    await transport.terminateSession();
    await agent.close();
    // The other replica drops its copy when the broadcast arrives: within milliseconds.
    const ended = await eventually(async () => {
      const statuses = await Promise.all(
        ports.map(async (port) => {
          const res = await fetch(`http://127.0.0.1:${port}/mcp/shared`, {
            method: "POST",
            headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${aliceKey}`, "mcp-session-id": sessionId },
            body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
          });
          const body = (await res.json()) as { error?: { code: number } };
          return res.status === 404 && body.error?.code === -32001;
        }),
      );
      return statuses.every(Boolean) ? true : undefined;
    }, 1_000);
    expect(ended).toBe(true);
  });

  test("an idle session expires everywhere", async () => {
    const agent = await roundRobinClient(aliceKey);
    await agent.listTools();
    const sessionId = (agent.transport as StreamableHTTPClientTransport).sessionId!;
    await new Promise((r) => setTimeout(r, IDLE_MS * 2 + 1_000));
    for (const port of ports) {
      const res = await fetch(`http://127.0.0.1:${port}/mcp/shared`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${aliceKey}`, "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(res.status).toBe(404);
    }
    // Its record is gone from the bucket too, not kept as a live record until the bucket's own
    // max age (24 h, MAX_SESSION_IDLE_MS, the registry's): idle sessions must not pile up there.
    const nc = await connectAs(nats, "gateway", "directory-probe");
    const kv = await new Kvm(jetstream(nc, { timeout: 2_000 })).open(KvBucket.sessions);
    expect((await kv.get(sessionId))?.operation ?? "gone").not.toBe("PUT");
    await nc.close();
    await agent.close();
  });

  test("a session idle on one replica but used on another stays alive everywhere (its record is not deleted by the idle one)", async () => {
    const { agent: client, pin } = await pinnedClient(aliceKey);
    await using agent = client;
    await agent.listTools();
    // Used only on the second replica for twice the idle timeout: the first sweeps its own copy away.
    pin(1);
    const until = Date.now() + IDLE_MS * 2 + 1_000;
    while (Date.now() < until) {
      await agent.listTools();
      await new Promise((r) => setTimeout(r, 400));
    }
    pin(0);
    expect((await agent.listTools()).tools.length).toBeGreaterThan(0);
  });

  // Last: it kills one of the two replicas. No sticky routing means no session lives in one process:
  // the agent's next request, on the surviving replica, finds the session's record on the bus.
  test("a replica killed (SIGKILL) holding a session: its call in flight fails at once and is cancelled upstream, and the session goes on at the other replica", async () => {
    const { agent: client, pin } = await pinnedClient(aliceKey);
    await using agent = client;
    expect((await agent.listTools()).tools.length).toBeGreaterThan(0);
    const sessionId = (agent.transport as StreamableHTTPClientTransport).sessionId!;
    const held = agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 5_000, tag: "on-killed" } }).then(
      () => "answered",
      (error: Error) => error.message,
    );
    await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "on-killed") ? true : undefined));
    const killedAt = Date.now();
    gateways!.processes[0]!.child.kill("SIGKILL");
    expect(await held).not.toBe("answered");
    expect(Date.now() - killedAt).toBeLessThan(1_000);

    pin(1);
    const resumedAt = Date.now();
    expect((await agent.callTool({ name: names["rec/echo"]!, arguments: { message: "after the kill" } })).content).toEqual([{ type: "text", text: "echo: after the kill" }]);
    expect((agent.transport as StreamableHTTPClientTransport).sessionId).toBe(sessionId);
    expect(Date.now() - resumedAt).toBeLessThan(1_000);
    // Nobody reads the killed replica's call any more: its connector hears so on its next heartbeat
    // and cancels it upstream (before, it ran to its end, holding its slots).
    await eventually(() => (recording.cancelled.includes("on-killed") ? true : undefined), 3_000);
    expect(Date.now() - killedAt).toBeLessThan(3_000);
  });
});
