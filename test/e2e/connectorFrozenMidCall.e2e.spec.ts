import type { ServiceProcess } from "@manifold/cli";
import type { NatsServer } from "@manifold/nats-server";
import { CallLiveness } from "@manifold/contracts";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { spawnConnector } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { freeze } from "../helpers/freeze.js";

/** The bound docs/operations.md promises for calls held by a connector that stops answering. */
const LOSS_BOUND_MS = 3_000;

/**
 * A connector replica frozen (SIGSTOP) mid-call for longer than the gateway's liveness window, then
 * resumed (SIGCONT). Its heartbeats stop, so the gateway fails the call once, within seconds; the
 * upstream's answer, which the frozen replica reads only on SIGCONT, arrives after the gateway gave
 * the call up and must be dropped (no second answer, no crash). The upstream allows one call at a
 * time, so a slot leaked by the late call would hold every later call in the queue.
 */
describe("a connector replica frozen while it holds a call, then resumed", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let tool: string;
  let replica: ServiceProcess | undefined;

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url, {}, { connector: false }), startRecordingUpstream()]);
    replica = await spawnConnector(nats, "f1", "frozen");
    await registerUpstreams(stack, { name: "frozen", transport: { type: "streamable-http", url: recording.url }, options: { maxConcurrency: 1 } });
    tool = (await createVirtualServer(stack, "frozen-vs", [{ upstream: "frozen", tool: "slow" }]))["frozen/slow"]!;
  });

  afterAll(async () => {
    if (replica?.child.exitCode === null) replica.child.kill("SIGCONT");
    await replica?.stop();
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  type Outcome = { settled: number; ok: boolean; code?: string; reason?: string; message?: string };
  const call = (client: DisposableClient, ms: number, tag: string): Promise<Outcome> =>
    client.callTool({ name: tool, arguments: { ms, tag } }).then(
      () => ({ settled: Date.now(), ok: true }),
      (error: { message: string; data?: { code?: string; reason?: string } }) => ({ settled: Date.now(), ok: false, code: error.data?.code, reason: error.data?.reason, message: error.message }),
    );

  test("the call fails once with upstream_unavailable within the bound; the late answer is dropped; calls work again within seconds", { timeout: 60_000 }, async () => {
    await using agent = await connectHttp(stack.mcpUrl("frozen-vs"));
    const errors: Error[] = [];
    agent.onerror = (error) => errors.push(error);
    expect((await call(agent, 10, "warm")).ok).toBe(true);

    const held = call(agent, 1_500, "held");
    await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "held") ? true : undefined), 10_000);
    await freeze(replica!.child);
    const frozenAt = Date.now();
    let outcome: Outcome;
    try {
      outcome = await held;
      // Frozen well past the liveness window; the upstream has answered into the frozen socket.
      while (Date.now() - frozenAt < CallLiveness.silenceMs * 3) await new Promise((r) => setTimeout(r, 100));
    } finally {
      replica!.child.kill("SIGCONT");
    }
    const resumedAt = Date.now();
    expect(outcome.ok).toBe(false);
    expect(outcome.code, outcome.message).toBe("upstream_unavailable");
    expect(outcome.reason).toBe("connector_lost");
    expect(outcome.message).toContain("stopped answering");
    expect(outcome.settled - frozenAt).toBeLessThan(LOSS_BOUND_MS);

    // The replica delivers its late answer and serves again; its one slot came back.
    const after = await eventually(async () => {
      const o = await call(agent, 10, `after-${Date.now()}`);
      return o.ok ? o : undefined;
    }, 15_000, 100);
    const recovered = after.settled - resumedAt;
    expect(recovered).toBeLessThan(5_000);
    const more = [];
    for (let i = 0; i < 5; i++) more.push(await call(agent, 10, `more-${i}`));
    expect(more.every((o) => o.ok)).toBe(true);
    expect(replica!.child.exitCode).toBeNull();
    expect(replica!.child.signalCode).toBeNull();
    // No stray second answer reached the agent's session.
    expect(errors.map((e) => e.message)).toEqual([]);
    console.info(`connectorFrozen: failed after ${outcome.settled - frozenAt} ms frozen; first call ok ${recovered} ms after SIGCONT`);
  });
});
