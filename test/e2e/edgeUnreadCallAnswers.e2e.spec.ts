import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { rawPost, SlowReaders, writesHeld } from "../helpers/slowReaders.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// helper-165: a caller's tool-call answers were bounded only by its calls in flight
// (GATEWAY_MAX_CALLS_PER_PRINCIPAL, 256) and each answer by the bus's max_payload (1 MiB by
// default): one caller whose client read its answers slowly, or not at all, could have the gateway
// hold 256 × 1 MiB, and 2 GiB where max_payload is 8 MB, until each was read or dropped as unread.
const ANSWER_BYTES = 4_000_000;
const CALLS = 32;
const MODERN = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

describe("large tool-call answers read slowly", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let keys: Record<string, string>;
  let names: Record<string, string>;
  const readers = new SlowReaders();
  /** Bytes the gateway holds to write, over all its connections. */
  let heldBytes: () => number;

  beforeAll(async () => {
    // Answers of 4 MB travel the bus whole.
    nats = await startNats({ extraConfig: ["max_payload: 8MB"] });
    upstream = await startRecordingUpstream();
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    names = await createVirtualServer(stack, "calls", [{ upstream: "rec", tool: "big" }]);
    keys = await grantedConsumers(stack, "calls", ["hoarder", "tenant"]);
    heldBytes = writesHeld(stack.gateway.app.server);
  }, 120_000);

  afterAll(async () => {
    readers.close();
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  const headers = (key: string) => ({
    authorization: `Bearer ${key}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": names["rec/big"]!,
  });
  const bodyOf = (bytes: number) => JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: names["rec/big"], arguments: { bytes }, _meta: MODERN } });

  test("attack: one consumer's slowly read tool-call answers are bounded in bytes, and another tenant is served meanwhile", async () => {
    const url = new URL(stack.mcpUrl("calls"));
    const request = rawPost(url, headers(keys.hoarder!), bodyOf(ANSWER_BYTES));
    const before = heldBytes();
    // Spaced: 48 answers of 4 MB at once through one process (gateway, connector, upstream) missed the bus's heartbeats.
    /** The first 4 KB of each answer, as they come. */
    const firsts = await readers.open(url, () => request, CALLS, 250);
    const started = Date.now();
    while (firsts.length < CALLS && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 2_000));
    const holding = heldBytes() - before;

    // Another tenant's call, meanwhile.
    const tenantStarted = performance.now();
    const res = await fetch(url, { method: "POST", headers: headers(keys.tenant!), body: bodyOf(1_000) });
    const tenantText = await res.text();
    const tenantMs = Math.round(performance.now() - tenantStarted);

    const served = firsts.filter((f) => f.includes('"result"')).length;
    const refused = firsts.filter((f) => f.includes('"code":-31035')).length;
    console.log(
      `[measure] ${CALLS} calls answering ${ANSWER_BYTES / 1e6} MB, read 4 KB/100 ms by one consumer: ${served} answered, ${refused} refused -31035; ` +
        `the gateway holds ${(holding / 2 ** 20).toFixed(0)} MiB to write (rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB); another tenant's call: ${res.status} in ${tenantMs} ms; ${upstream.calls.length} calls reached the upstream`,
    );
    expect(res.status).toBe(200);
    expect(tenantText).toContain("x".repeat(1_000));
    expect(tenantMs).toBeLessThan(2_000);
    // Before: 32 answered, 122 MiB held to write (rss 649 MiB), the tenant's call in 42 ms.
    expect(served + refused).toBe(CALLS);
    expect(refused).toBeGreaterThan(0);
    // 16 MiB of answers being written per caller, and the answer that crosses it.
    expect(holding).toBeLessThan(16 * 2 ** 20 + 2 * ANSWER_BYTES);
  }, 120_000);
});
