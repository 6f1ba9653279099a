import type { ServiceProcess } from "@manifold/cli";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { spawnConnector } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const CALL_TIMEOUT_MS = 1_500;

describe("connector replicas of one upstream", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  const replicas: ServiceProcess[] = [];

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([
      startStack(nats.url, { CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS) }, { connector: false }),
      startRecordingUpstream(),
    ]);
    for (const id of ["r1", "r2"]) replicas.push(await spawnConnector(nats, id, "scaled"));
    await registerUpstreams(stack, { name: "scaled", transport: { type: "streamable-http", url: recording.url } });
  });

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("share the calls, and a replica killed mid-load costs at most its calls in flight, which fail fast and clearly", async () => {
    const names = await createVirtualServer(stack, "scaled-vs", [{ upstream: "scaled", tool: "slow" }]);
    const tool = names["scaled/slow"]!;
    const clients = await Promise.all(Array.from({ length: 8 }, () => connectHttp(stack.mcpUrl("scaled-vs"))));
    type Outcome = { started: number; settled: number; ok: boolean; code?: string };
    const outcomes: Outcome[] = [];
    let killedAt = Number.POSITIVE_INFINITY;
    const until = Date.now() + 3_500;

    const worker = async (client: (typeof clients)[number]) => {
      while (Date.now() < until) {
        const started = Date.now();
        try {
          await client.callTool({ name: tool, arguments: { ms: 20 } });
          outcomes.push({ started, settled: Date.now(), ok: true });
        } catch (error) {
          outcomes.push({ started, settled: Date.now(), ok: false, code: (error as { data?: { code?: string } }).data?.code });
        }
      }
    };
    const load = Promise.all(clients.map(worker));
    await new Promise((r) => setTimeout(r, 1_200));
    const sessionsBeforeKill = new Set(recording.calls.map((c) => c.headers["mcp-session-id"]));
    killedAt = Date.now();
    replicas[0]!.child.kill("SIGKILL");
    await load;
    await Promise.all(clients.map((c) => c.close()));

    // Both replicas held their own upstream session and served calls.
    expect(sessionsBeforeKill.size).toBe(2);
    const failures = outcomes.filter((o) => !o.ok);
    // Only calls in flight on the dead replica may fail: at most one per concurrent client.
    expect(failures.length).toBeLessThanOrEqual(clients.length);
    for (const failure of failures) {
      expect(["upstream_timeout", "upstream_unavailable"]).toContain(failure.code);
      // nats-server needs a moment to see the killed process's socket close.
      expect(failure.started).toBeLessThanOrEqual(killedAt + 100);
    }
    // Nothing hangs: every call settled within its time budget plus the bus margin.
    for (const o of outcomes) expect(o.settled - o.started).toBeLessThan(CALL_TIMEOUT_MS + 1_000);
    const afterKill = outcomes.filter((o) => o.started > killedAt + 100);
    expect(afterKill.length).toBeGreaterThan(20);
    expect(afterKill.every((o) => o.ok)).toBe(true);
  });
});
