import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { callAnswer, connectClient, connectFrom, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * Callers without credentials (an anonymous grant under `GATEWAY_ALLOW_ANONYMOUS=true`, or
 * everyone under `GATEWAY_AUTH=off`) are told apart by their client address: one anonymous
 * client's slow calls, or its calls in flight, must not get another client's calls refused.
 * Mallory calls from 127.0.0.2, Alice from 127.0.0.3; 127.0.0.1 is a trusted proxy (X-Forwarded-For).
 */
describe.each<{ auth: string; env: Record<string, string> }>([
  { auth: "anonymous grant", env: { GATEWAY_AUTH: "required", GATEWAY_ALLOW_ANONYMOUS: "true" } },
  { auth: "GATEWAY_AUTH=off", env: { GATEWAY_AUTH: "off" } },
])("anonymous clients at different addresses are different callers ($auth)", ({ env }) => {
  let setup: { nats: NatsServer; stack: Stack; recording: RecordingUpstream; slowTool: string };

  beforeAll(async () => {
    const nats = await startNats();
    const recording = await startRecordingUpstream("shared");
    const stack = await startStack(nats.url, {
      ...env,
      GATEWAY_MAX_CALLS_PER_PRINCIPAL: "4",
      GATEWAY_TRUST_PROXY: "127.0.0.1",
      CONNECTOR_BREAKER_THRESHOLD: "3",
      CONNECTOR_BREAKER_COOLDOWN_MS: "20000",
      HEALTH_HEARTBEAT_MS: "200",
    });
    await registerUpstreams(stack, { name: "shared", transport: { type: "streamable-http", url: recording.url }, options: { callTimeoutMs: 2_000, maxConcurrency: 16 } });
    const slowTool = (await createVirtualServer(stack, "open", [{ upstream: "shared", tool: "slow" }]))["shared/slow"]!;
    if (env.GATEWAY_AUTH !== "off") {
      expect((await stack.admin.post("/v1/virtual-servers/open/grants", { grantId: "anyone", subject: { anonymous: true } })).status).toBe(201);
      await createVirtualServer(stack, "limited", [{ upstream: "shared", tool: "slow" }]);
      expect((await stack.admin.post("/v1/virtual-servers/limited/grants", { grantId: "anyone", subject: { anonymous: true }, rateLimitPerMinute: 2 })).status).toBe(201);
    }
    setup = { nats, stack, recording, slowTool };
  }, 60_000);

  afterAll(async () => {
    await setup?.stack.close();
    await setup?.recording.close();
    await setup?.nats.stop();
  });

  const from = (address: string) => connectFrom(setup.stack.mcpUrl("open"), address);
  const slow = (client: DisposableClient, ms: number, tag: string) => callAnswer(client, setup.slowTool, { ms, tag });

  const forwardedFor = (client: string) =>
    connectClient(new StreamableHTTPClientTransport(new URL(setup.stack.mcpUrl("open")), { requestInit: { headers: { "x-forwarded-for": client } } }));
  // The second pair: an IPv6-only gateway (or its proxy) reaches IPv4 clients through NAT64, each
  // seen under the well-known prefix with its IPv4 address in the last 32 bits (RFC 6052). Counted
  // as its /64, every IPv4 client was one caller (to 2026-12-08: 4 of 4 of Alice's refused here too).
  test.each([
    { pair: "direct", connect: from, mallory: "127.0.0.2", alice: "127.0.0.3" },
    { pair: "NAT64, through a trusted proxy", connect: forwardedFor, mallory: "64:ff9b::1.2.3.4", alice: "64:ff9b::5.6.7.8" },
  ])("attack: mallory's calls in flight, up to her bound, leave alice's calls served ($pair)", async ({ connect, ...at }) => {
    await using mallory = await connect(at.mallory);
    await using alice = await connect(at.alice);
    // Mallory holds her four calls in flight (GATEWAY_MAX_CALLS_PER_PRINCIPAL), each within the budget.
    const hers = Array.from({ length: 4 }, (_, i) => slow(mallory, 800, `mallory-held-${i}`));
    await new Promise((r) => setTimeout(r, 200));
    // Before, every anonymous client was one caller: 4 of 4 of Alice's were refused too_many_calls.
    const theirs = await Promise.all(Array.from({ length: 4 }, (_, i) => slow(alice, 10, `alice-held-${i}`)));
    expect(await Promise.all(hers)).toEqual(["ok", "ok", "ok", "ok"]);
    expect(theirs.filter((answer) => answer !== "ok"), theirs.join("\n")).toEqual([]);
  });

  // Some proxies forward the client with its source port (Azure Application Gateway:
  // `192.0.2.7:40001`, `[2001:db8::1]:443`), which proxy-addr hands on unparsed: before, each of
  // one client's connections was a caller of its own (8 of 8 calls in flight past a bound of 4).
  test.each([
    { family: "IPv4", forwarded: (i: number) => `192.0.2.7:${40_001 + i}` },
    { family: "IPv6 (one /64)", forwarded: (i: number) => `[2001:db8:1:2::${i + 1}]:${40_001 + i}` },
  ])("attack: one $family client forwarded with a new source port per connection is still one caller", async ({ forwarded }) => {
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => forwardedFor(forwarded(i))));
    try {
      const answers = await Promise.all(clients.map((client, i) => slow(client, 1_000, `ported-${i}`)));
      expect(answers.filter((answer) => answer === "ok").length, answers.join("\n")).toBe(4);
      expect(answers.filter((answer) => /calls in flight/.test(answer)).length, answers.join("\n")).toBe(4);
    } finally {
      await Promise.all(clients.map((client) => client[Symbol.asyncDispose]()));
    }
  });

  test("attack: mallory's calls that run past the budget open her circuit only; alice's quick calls are all served", async () => {
    const { recording } = setup;
    await using mallory = await from("127.0.0.2");
    await using alice = await from("127.0.0.3");
    const hers: string[] = [];
    for (let i = 0; i < 3; i++) hers.push(await slow(mallory, 4_000, `mallory-${i}`));
    expect(hers.every((answer) => /timed out|timeout|within/i.test(answer)), hers.join("\n")).toBe(true);
    const before = recording.calls.filter((c) => c.tool === "slow").length;
    expect(await slow(mallory, 10, "mallory-after")).toMatch(/circuit open/);
    expect(recording.calls.filter((c) => c.tool === "slow").length).toBe(before);
    // Before, every anonymous client was one caller on the bus: 10 of 10 of Alice's refused "circuit open".
    const theirs: string[] = [];
    for (let i = 0; i < 10; i++) theirs.push(await slow(alice, 10, `alice-${i}`));
    expect(theirs.filter((answer) => answer !== "ok"), theirs.join("\n")).toEqual([]);
  });

  // Only where there is a grant to hold the limit (registered, not skipped, under GATEWAY_AUTH=off).
  if (env.GATEWAY_AUTH !== "off") test("an anonymous grant's rate limit stays one count for every client network: the operator's bound on what the public sends upstream", async () => {
    // Others than mallory and alice, whose circuits of the tool the test before may have left open.
    await using carol = await connectFrom(setup.stack.mcpUrl("limited"), "127.0.0.4");
    await using dave = await connectFrom(setup.stack.mcpUrl("limited"), "127.0.0.5");
    expect([await slow(carol, 1, "c1"), await slow(carol, 1, "c2")]).toEqual(["ok", "ok"]);
    expect(await slow(dave, 1, "d1")).toMatch(/rate limit of 2 calls per minute/);
  });
});
