import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

/** The bound docs/operations.md promises for calls held by a connector that dies. */
const LOSS_BOUND_MS = 3_000;

/**
 * A connector replica killed with -9 cannot answer the calls it holds. Its heartbeats stop,
 * and the gateway fails those calls within seconds instead of at the call timeout (60 s here).
 */
describe("a connector replica killed while it holds calls", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let tool: string;
  const replicas: ServiceProcess[] = [];

  const spawnReplica = async (id: string) => {
    const port = await freePort();
    const replica = spawnService(`connector-${id}`, serviceEntry("connector"), [], {
      ...busEnv(nats, "connector"),
      CONNECTOR_UPSTREAMS: "held",
      CONNECTOR_REPLICA_ID: id,
      CONNECTOR_PORT: String(port),
      LOG_LEVEL: "warn",
    });
    replicas.push(replica);
    await replica.ready(`http://127.0.0.1:${port}/readyz`);
    return replica;
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, {}, { connector: false }), startRecordingUpstream()]);
    await spawnReplica("r1");
    await registerUpstreams(stack, { name: "held", transport: { type: "streamable-http", url: recording.url } });
    tool = (await createVirtualServer(stack, "held-vs", [{ upstream: "held", tool: "slow" }]))["held/slow"]!;
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  type Outcome = { tag: string; settled: number; ok: boolean; code?: string; message?: string };
  const call = (client: DisposableClient, ms: number, tag: string): Promise<Outcome> =>
    client.callTool({ name: tool, arguments: { ms, tag } }).then(
      () => ({ tag, settled: Date.now(), ok: true }),
      (error: { message: string; data?: { code?: string } }) => ({ tag, settled: Date.now(), ok: false, code: error.data?.code, message: error.message }),
    );
  const started = (tags: string[]) => () => (tags.every((t) => recording.calls.some((c) => (c.arguments as { tag?: string }).tag === t)) ? true : undefined);

  test("its calls fail within the bound with upstream_unavailable; calls on the survivor, long ones too, succeed", { timeout: 90_000 }, async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => connectHttp(stack.mcpUrl("held-vs"))));
    // Held by r1 alone, for longer than the gateway's silence window before r1 dies.
    const onFirst = ["a0", "a1", "a2", "a3"];
    const first = onFirst.map((tag, i) => call(clients[i]!, 30_000, tag));
    await eventually(started(onFirst), 10_000);
    await spawnReplica("r2");
    // Shared by both replicas.
    const mixedTags = ["b0", "b1", "b2", "b3"];
    const mixed = mixedTags.map((tag, i) => call(clients[4 + i]!, 6_000, tag));
    await eventually(started(mixedTags), 10_000);
    await new Promise((r) => setTimeout(r, 500));

    const killedAt = Date.now();
    replicas[0]!.child.kill("SIGKILL");
    const outcomes = await Promise.all([...first, ...mixed]);

    for (const lost of outcomes.filter((o) => !o.ok)) {
      expect(lost.code, lost.message).toBe("upstream_unavailable");
      expect(lost.message).toContain("stopped answering");
      expect(lost.settled - killedAt).toBeLessThan(LOSS_BOUND_MS);
    }
    expect(outcomes.filter((o) => onFirst.includes(o.tag)).every((o) => !o.ok)).toBe(true);
    // One upstream session per replica: a call on r2's session was not lost.
    const sessionOf = (tag: string) => recording.calls.find((c) => (c.arguments as { tag?: string }).tag === tag)!.headers["mcp-session-id"];
    const lostSession = sessionOf("a0");
    for (const o of outcomes) expect(o.ok).toBe(sessionOf(o.tag) !== lostSession);

    // The survivor serves new calls, including one that outlasts the silence window on heartbeats alone.
    const after = await Promise.all([call(clients[0]!, 10, "c0"), call(clients[1]!, 3_500, "c1")]);
    expect(after.map((o) => o.ok)).toEqual([true, true]);
    await Promise.all(clients.map((c) => c.close()));
  });
});
