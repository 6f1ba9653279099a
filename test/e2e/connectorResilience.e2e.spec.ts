import { freePort, type NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream } from "../fixtures/mutableUpstream.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { modernRequest } from "../helpers/modernRequests.js";

const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;

describe("connector resilience", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let boundedRecording: RecordingUpstream;
  let agent: DisposableClient;
  let names: Record<string, string>;
  let flakyPort: number;

  beforeAll(async () => {
    nats = await startNats();
    flakyPort = await freePort();
    [stack, recording, boundedRecording] = await Promise.all([
      startStack(nats.url, { CONNECTOR_BREAKER_THRESHOLD: "3", CONNECTOR_BREAKER_COOLDOWN_MS: "400", HEALTH_HEARTBEAT_MS: "200", CONNECTOR_TOOL_SHARE: "1" }),
      startRecordingUpstream(),
      startRecordingUpstream("bounded"),
    ]);
    await registerUpstreams(
      stack,
      { name: "recording", transport: { type: "streamable-http", url: recording.url } },
      { name: "bounded", transport: { type: "streamable-http", url: boundedRecording.url }, options: { maxConcurrency: 2, callTimeoutMs: 1_000 } },
      { name: "stdio-fixture", transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE] } },
    );
    names = await createVirtualServer(stack, "resilience", [
      { upstream: "recording", tool: "slow" },
      { upstream: "recording", tool: "fail" },
      { upstream: "recording", tool: "echo" },
      { upstream: "recording", tool: "big" },
      { upstream: "bounded", tool: "slow" },
      { upstream: "stdio-fixture", tool: "rpc-error" },
    ]);
    agent = await connectHttp(stack.mcpUrl("resilience"));
  });

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await Promise.all([recording?.close(), boundedRecording?.close()]);
    await nats?.stop();
  });

  test("a result larger than the bus carries is a clear error that leaves the upstream healthy", async () => {
    const big = (bytes: number) => agent.callTool({ name: names["recording/big"]!, arguments: { bytes } });
    const fits = await big(500_000);
    expect((fits.content as { text: string }[])[0]!.text).toHaveLength(500_000);
    for (let i = 0; i < 3; i++) {
      const error = await rpcError(big(2_000_000));
      expect(error.code).toBe(-32016);
      expect(error.data).toMatchObject({ code: "payload_too_large", bytes: expect.any(Number), maxBytes: 1024 * 1024 });
      expect(error.message).toMatch(/upstream 'recording' returned (more than )?\d+ bytes for 'big', more than the message bus carries \(1048576 bytes/);
    }
    // Not the upstream's fault: the circuit stays closed (its threshold here is 3 failures).
    expect((await agent.callTool({ name: names["recording/echo"]!, arguments: { message: "still fine" } })).content).toEqual([{ type: "text", text: "echo: still fine" }]);

    // A tool list larger than a bus message: discovery says so instead of blaming the upstream.
    await using wordy = await startMutableUpstream([{ name: "wordy", description: "x".repeat(1_100_000), inputSchema: { type: "object" } }]);
    const registered = await stack.admin.post("/v1/upstreams", { name: "wordy", transport: { type: "streamable-http", url: wordy.url } });
    expect(registered.body.discovery).toMatchObject({ status: "failed", error: { code: "payload_too_large" } });
    expect(registered.body.discovery.error.message).toMatch(/upstream 'wordy' lists tools of at least \d+ bytes, more than the message bus carries/);
  });

  test("a call that outlasts the upstream's timeout fails with a distinct timeout error", async () => {
    const started = Date.now();
    const error = await rpcError(agent.callTool({ name: names["bounded/slow"]!, arguments: { ms: 3_000, tag: "too-slow" } }));
    expect(error.code).toBe(-32011);
    expect(error.data.code).toBe("upstream_timeout");
    expect(error.message).toContain("'bounded'");
    expect(Date.now() - started).toBeLessThan(2_500);
    // The upstream is told to stop working on it.
    await eventually(() => (boundedRecording.cancelled.includes("too-slow") ? true : undefined));
  });

  test("an upstream's JSON-RPC error keeps its message; an isError result passes through unchanged", async () => {
    const error = await rpcError(agent.callTool({ name: names["stdio-fixture/rpc-error"]!, arguments: {} }));
    expect(error.code).toBe(-32012);
    expect(error.message).toContain("the fixture refuses");
    expect(error.data).toMatchObject({ code: "upstream_error", upstreamCode: -32099, upstreamData: { reason: "on purpose" } });
    const result = await agent.callTool({ name: names["recording/fail"]!, arguments: {} });
    expect(result).toEqual({ content: [{ type: "text", text: "it failed" }], isError: true });
  });

  test("bounds calls in flight per upstream and queues the rest", async () => {
    // Three rounds of two: their queue time counts against the upstream's call timeout, so it leaves a
    // loaded machine room (at 400 ms, three rounds of 100 ms timed out under a busy CI run).
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => agent.callTool({ name: names["bounded/slow"]!, arguments: { ms: 100, tag: `q${i}` } })),
    );
    expect(results.every((r) => !r.isError)).toBe(true);
    expect(boundedRecording.maxInFlight).toBe(2);
  });

  test("relays progress notifications with the agent's own progress token", async () => {
    const updates: { progress: number; total?: number; message?: string }[] = [];
    const result = await agent.callTool(
      { name: names["recording/slow"]!, arguments: { ms: 150, steps: 3 } },
      undefined,
      { onprogress: (p) => updates.push(p) },
    );
    expect(result.content).toEqual([{ type: "text", text: "slept 150 ms" }]);
    expect(updates).toEqual([
      { progress: 1, total: 3, message: "step 1" },
      { progress: 2, total: 3, message: "step 2" },
      { progress: 3, total: 3, message: "step 3" },
    ]);
  });

  test("attack: a progress token is bounded, and so is what one call's notifications may queue for a client that does not read", async () => {
    // Every notification repeats the agent's token: a 256 KiB token on 1,000 steps held ~500 MiB per call at the gateway.
    const before = recording.calls.length;
    const long = await modernRequest(stack.mcpUrl("resilience"), "none", "tools/call", { name: names["recording/slow"], arguments: { ms: 10, steps: 2 }, _meta: { progressToken: "t".repeat(257) } });
    expect(long).toMatchObject({ status: 400, error: { code: -32600, data: { code: "invalid_request" } } });
    expect(long.error!.message).toContain("progressToken");
    expect(recording.calls.length).toBe(before);
    // 3,000 notifications of ~400 bytes: the first 256 KiB of them reach the agent, then the rest are dropped; the result arrives.
    const flood = await modernRequest(stack.mcpUrl("resilience"), "none", "tools/call", { name: names["recording/slow"], arguments: { ms: 600, steps: 3_000, tag: "x".repeat(100) }, _meta: { progressToken: "p".repeat(256) } });
    const progress = flood.messages.filter((m) => m.method === "notifications/progress");
    expect(flood.result).toMatchObject({ content: [{ type: "text" }] });
    expect(progress.length).toBeGreaterThan(100);
    expect(progress.length).toBeLessThan(3_000);
    // About the budget (256 KiB of payload and token; the JSON around them adds a few per cent).
    expect(progress.reduce((bytes, m) => bytes + JSON.stringify(m.params).length, 0)).toBeLessThan(300 * 1024);
  });

  test("a client's cancellation travels to the upstream and cancels its request", async () => {
    const controller = new AbortController();
    const call = agent.callTool({ name: names["recording/slow"]!, arguments: { ms: 5_000, tag: "cancel-me" } }, undefined, { signal: controller.signal });
    await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "cancel-me") ? true : undefined));
    controller.abort("user changed their mind");
    await expect(call).rejects.toThrow();
    await eventually(() => (recording.cancelled.includes("cancel-me") ? true : undefined), 3_000);
  });

  test("a cancellation inside a JSON-RPC batch (2025-03-26) travels to the upstream too", async () => {
    const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream" };
    const init = await fetch(stack.mcpUrl("resilience"), {
      method: "POST",
      headers,
      body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
    });
    await init.text();
    const session = { ...headers, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-03-26" };
    const post = (body: unknown) => fetch(stack.mcpUrl("resilience"), { method: "POST", headers: session, body: JSON.stringify(body) });
    await (await post({ jsonrpc: "2.0", method: "notifications/initialized" })).text();
    const call = post({ jsonrpc: "2.0", id: 7, method: "tools/call", params: { name: names["recording/slow"], arguments: { ms: 10_000, tag: "batch-cancel" } } });
    await eventually(() => (recording.calls.some((c) => (c.arguments as { tag?: string }).tag === "batch-cancel") ? true : undefined));
    const batch = await post([{ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 7, reason: "changed my mind" } }]);
    expect(batch.status).toBe(202);
    await eventually(() => (recording.cancelled.includes("batch-cancel") ? true : undefined), 3_000);
    await (await call).body?.cancel();
  });

  test("opens the circuit after consecutive failures, fails fast, keeps listing pinned tools, and closes after a probe", async () => {
    let flaky: RecordingUpstream | undefined = await startRecordingUpstream("flaky", flakyPort);
    try {
      await registerUpstreams(stack, { name: "flaky", transport: { type: "streamable-http", url: flaky.url } });
      const flakyNames = await createVirtualServer(stack, "flaky-vs", [{ upstream: "flaky", tool: "echo" }]);
      const echo = flakyNames["flaky/echo"]!;
      await using client = await connectHttp(stack.mcpUrl("flaky-vs"));
      expect((await client.callTool({ name: echo, arguments: { message: "up" } })).content).toEqual([{ type: "text", text: "echo: up" }]);

      await flaky.close();
      flaky = undefined;
      for (let i = 0; i < 3; i++) {
        const error = await rpcError(client.callTool({ name: echo, arguments: { message: "down" } }));
        expect(error.data.code).toBe("upstream_unavailable");
        expect(error.message).toContain("'flaky'");
      }
      const fast = Date.now();
      const open = await rpcError(client.callTool({ name: echo, arguments: { message: "down" } }));
      expect(Date.now() - fast).toBeLessThan(200);
      expect(open.message).toContain("circuit open");
      expect(open.data).toMatchObject({ code: "upstream_unavailable", circuit: "open" });

      const health = await eventually(async () => {
        const { body } = await stack.admin.get("/v1/upstreams/flaky");
        return body.health.status === "down" ? body.health : undefined;
      });
      expect(health.replicas[0]).toMatchObject({ status: "down", circuit: "open" });
      // While the upstream is down its pinned tools are still listed.
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual([echo]);

      flaky = await startRecordingUpstream("flaky", flakyPort);
      const recovered = await eventually(
        async () => {
          const result = await client.callTool({ name: echo, arguments: { message: "back" } }).catch(() => undefined);
          return result?.content;
        },
        15_000,
        200,
      );
      expect(recovered).toEqual([{ type: "text", text: "echo: back" }]);
      await eventually(async () => ((await stack.admin.get("/v1/upstreams/flaky")).body.health.status === "up" ? true : undefined));
    } finally {
      await flaky?.close();
    }
  });

  test("an unreachable upstream is an immediate, named error", async () => {
    const deadPort = await freePort();
    const res = await stack.admin.post("/v1/upstreams", { name: "nowhere", transport: { type: "streamable-http", url: `http://127.0.0.1:${deadPort}/mcp` } });
    expect(res.status).toBe(201);
    expect(res.body.discovery).toMatchObject({ status: "failed", error: { code: "upstream_unavailable" } });
    expect(res.body.discovery.error.message).toContain("'nowhere'");
    // Which failure it was (refused, reset, not resolved), not undici's bare "fetch failed".
    expect(res.body.discovery.error.message).toContain("ECONNREFUSED");
    const health = await eventually(async () => (await stack.admin.get("/v1/upstreams/nowhere")).body.health?.replicas?.[0]?.reason, 5_000, 50);
    expect(health).toContain("ECONNREFUSED");
  });
});
