import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startReplicaStack, type ReplicaStack } from "../helpers/replicas.js";

/** The bound docs/operations.md promises for calls held by a connector that dies. */
const LOSS_BOUND_MS = 3_000;

/**
 * A connector replica killed with -9 cannot answer the calls it holds. Its heartbeats stop,
 * and the gateway fails those calls within seconds instead of at the call timeout (60 s here).
 */
describe("a connector replica killed while it holds calls", () => {
  let r: ReplicaStack;
  let tool: string;

  beforeAll(async () => {
    r = await startReplicaStack("held", ["r1"]);
    tool = (await createVirtualServer(r.stack, "held-vs", [{ upstream: "held", tool: "slow" }]))["held/slow"]!;
  });
  afterAll(async () => r?.close());

  type Outcome = { tag: string; settled: number; ok: boolean; code?: string; message?: string };
  const call = (client: DisposableClient, ms: number, tag: string): Promise<Outcome> =>
    client.callTool({ name: tool, arguments: { ms, tag } }).then(
      () => ({ tag, settled: Date.now(), ok: true }),
      (error: { message: string; data?: { code?: string } }) => ({ tag, settled: Date.now(), ok: false, code: error.data?.code, message: error.message }),
    );
  const started = (tags: string[]) => () => (tags.every((t) => r.recording.calls.some((c) => (c.arguments as { tag?: string }).tag === t)) ? true : undefined);

  test("its calls fail within the bound with upstream_unavailable; calls on the survivor, long ones too, succeed", { timeout: 90_000 }, async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => connectHttp(r.stack.mcpUrl("held-vs"))));
    // Held by r1 alone, for longer than the gateway's silence window before r1 dies.
    const onFirst = ["a0", "a1", "a2", "a3"];
    const first = onFirst.map((tag, i) => call(clients[i]!, 30_000, tag));
    await eventually(started(onFirst), 10_000);
    await r.spawn("r2");
    // Shared by both replicas.
    const mixedTags = ["b0", "b1", "b2", "b3"];
    const mixed = mixedTags.map((tag, i) => call(clients[4 + i]!, 6_000, tag));
    await eventually(started(mixedTags), 10_000);
    await new Promise((r) => setTimeout(r, 500));

    const killedAt = Date.now();
    r.replicas[0]!.child.kill("SIGKILL");
    const outcomes = await Promise.all([...first, ...mixed]);

    for (const lost of outcomes.filter((o) => !o.ok)) {
      expect(lost.code, lost.message).toBe("upstream_unavailable");
      expect(lost.message).toContain("stopped answering");
      expect(lost.settled - killedAt).toBeLessThan(LOSS_BOUND_MS);
    }
    expect(outcomes.filter((o) => onFirst.includes(o.tag)).every((o) => !o.ok)).toBe(true);
    // One upstream session per replica: a call on r2's session was not lost.
    const sessionOf = (tag: string) => r.recording.calls.find((c) => (c.arguments as { tag?: string }).tag === tag)!.headers["mcp-session-id"];
    const lostSession = sessionOf("a0");
    for (const o of outcomes) expect(o.ok).toBe(sessionOf(o.tag) !== lostSession);

    // The survivor serves new calls, including one that outlasts the silence window on heartbeats alone.
    const after = await Promise.all([call(clients[0]!, 10, "c0"), call(clients[1]!, 3_500, "c1")]);
    expect(after.map((o) => o.ok)).toEqual([true, true]);
    await Promise.all(clients.map((c) => c.close()));
  });
});
