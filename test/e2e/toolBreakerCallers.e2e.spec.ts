import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { callAnswer, connectClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A tool's timeouts on the upstream's shared session open a circuit: whose? A tool's latency may
 * be its arguments' (a search over a large input, a wait): one consumer calling it with arguments
 * that run past the budget must not cut another consumer off the same tool.
 */
describe("one caller's timeouts of a tool do not cut other callers off that tool", () => {
  /** Consumers mallory, alice and bob, each granted `iso`, whose one tool is the recording upstream's `slow` (budget 600 ms). */
  let setup: { nats: NatsServer; stack: Stack; recording: RecordingUpstream; keys: Record<string, string>; slowTool: string };

  beforeAll(async () => {
    const nats = await startNats();
    const recording = await startRecordingUpstream("shared");
    const stack = await startStack(nats.url, { GATEWAY_AUTH: "required", CONNECTOR_BREAKER_THRESHOLD: "3", CONNECTOR_BREAKER_COOLDOWN_MS: "20000", HEALTH_HEARTBEAT_MS: "200" });
    await registerUpstreams(stack, { name: "shared", transport: { type: "streamable-http", url: recording.url }, options: { callTimeoutMs: 600, maxConcurrency: 8 } });
    const slowTool = (await createVirtualServer(stack, "iso", [{ upstream: "shared", tool: "slow" }]))["shared/slow"]!;
    setup = { nats, stack, recording, keys: await grantedConsumers(stack, "iso", ["mallory", "alice", "bob"]), slowTool };
  }, 60_000);

  afterAll(async () => {
    await setup?.stack.close();
    await setup?.recording.close();
    await setup?.nats.stop();
  });

  const clientOf = (key: string) => connectClient(new StreamableHTTPClientTransport(new URL(setup.stack.mcpUrl("iso")), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
  const slow = (client: Awaited<ReturnType<typeof clientOf>>, ms: number, tag: string) => callAnswer(client, setup.slowTool, { ms, tag });
  const health = async () => (await setup.stack.admin.get("/v1/upstreams/shared")).body.health;

  test("attack: mallory's calls that run past the budget open her circuit only; alice's quick calls of the tool are all served", async () => {
    const { keys, recording } = setup;
    await using mallory = await clientOf(keys.mallory!);
    await using alice = await clientOf(keys.alice!);
    await using bob = await clientOf(keys.bob!);
    // Mallory's arguments make each call outlast the 600 ms budget: three in a row.
    const hers: string[] = [];
    for (let i = 0; i < 3; i++) hers.push(await slow(mallory, 5_000, `mallory-${i}`));
    expect(hers.every((answer) => /timed out|timeout|within/i.test(answer)), hers.join("\n")).toBe(true);
    // Her next call is refused without reaching the upstream: her circuit is open.
    const before = recording.calls.filter((c) => c.tool === "slow").length;
    expect(await slow(mallory, 10, "mallory-after")).toMatch(/circuit open/);
    expect(recording.calls.filter((c) => c.tool === "slow").length).toBe(before);
    // Alice's and Bob's quick calls of the same tool: every one served. Before, 10 of 10 each were
    // refused "circuit open" for the cooldown (20 s here), and a call of Mallory's each cooldown kept it so.
    const theirs: string[] = [];
    for (let i = 0; i < 10; i++) theirs.push(await slow(alice, 10, `alice-${i}`), await slow(bob, 10, `bob-${i}`));
    expect(theirs.filter((answer) => answer !== "ok"), theirs.join("\n")).toEqual([]);
    // The upstream is not reported down for a caller's slow arguments.
    expect((await health()).replicas[0]).toMatchObject({ circuit: "closed" });
  });
});
