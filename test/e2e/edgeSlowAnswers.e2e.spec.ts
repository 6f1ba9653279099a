import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { MutableUpstream } from "../fixtures/mutableUpstream.js";
import { startBigListStack } from "../helpers/bigLists.js";
import { grantedConsumers } from "../helpers/catalog.js";
import { rawSession } from "../helpers/itemStreams.js";
import type { Stack } from "../helpers/stack.js";
import { rawPost, SlowReaders, statusOf, writesHeld } from "../helpers/slowReaders.js";

// helper-159: only requests that go upstream count as a caller's calls in flight, and an answer
// read slowly (a little taken every so often) is neither unread for good (`dropUnread`) nor
// counted against anything per caller. So one consumer's cheap requests with large answers
// (a 6 MB tools/list is one unit of its request budget), each read a few KB at a time, held
// whatever of each answer the kernel could not take in the gateway's memory, as many as it liked.
const TOOLS = 600;
const HOARDED = 40;
const MODERN = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };

describe("large answers read slowly", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: MutableUpstream;
  let keys: Record<string, string>;
  let tool: string;
  const readers = new SlowReaders();
  /** Bytes the gateway holds to write, over all its connections. */
  let heldBytes: () => number;

  beforeAll(async () => {
    let names: Record<string, string>;
    ({ nats, upstream, stack, names } = await startBigListStack(TOOLS));
    tool = names["big/tool_0"]!;
    keys = await grantedConsumers(stack, "big", ["hoarder", "tenant"]);
    heldBytes = writesHeld(stack.gateway.app.server);
  }, 120_000);

  afterAll(async () => {
    readers.close();
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  const headers = (key: string, method: string) => ({
    authorization: `Bearer ${key}`,
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": method,
    ...(method === "tools/call" ? { "mcp-name": tool } : {}),
  });
  const bodyOf = (method: string, params: Record<string, unknown>) => JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: { ...params, _meta: MODERN } });
  /** Sends `request(i)` on `count` connections of their own, each answer read slowly; the status of each answer, and the refusals' first bytes, as they come. */
  const hoard = async (request: (i: number) => string, count: number) => {
    const firsts = await readers.open(new URL(stack.mcpUrl("big")), request, count);
    return { firsts, statuses: () => firsts.map(statusOf), refusals: () => firsts.filter((f) => statusOf(f) === "429") };
  };

  test("attack: one consumer's slowly read tool lists are bounded, and another tenant is served meanwhile", async () => {
    const url = new URL(stack.mcpUrl("big"));
    const request = rawPost(url, headers(keys.hoarder!, "tools/list"), bodyOf("tools/list", {}));
    const before = heldBytes();
    const hoarded = await hoard(() => request, HOARDED);
    await new Promise((r) => setTimeout(r, 2_000));
    const holding = heldBytes() - before;
    const rss = process.memoryUsage().rss;

    // Another tenant's list and call, meanwhile.
    const tenant = [];
    for (const [method, params] of [
      ["tools/list", {}],
      ["tools/call", { name: tool, arguments: {} }],
    ] as const) {
      const started = performance.now();
      const res = await fetch(url, { method: "POST", headers: headers(keys.tenant!, method), body: bodyOf(method, params) });
      await res.arrayBuffer();
      tenant.push({ method, status: res.status, ms: Math.round(performance.now() - started) });
    }
    const statuses = hoarded.statuses();
    const refusals = hoarded.refusals();
    const served = statuses.filter((s) => s === "200").length;
    const refused = refusals.length;
    console.log(
      `[measure] ${HOARDED} tool lists of ${((TOOLS * 10_000) / 1e6).toFixed(0)} MB read 4 KB/100 ms by one consumer: ${served} answered 200, ${refused} refused 429; ` +
        `the gateway holds ${(holding / 2 ** 20).toFixed(0)} MiB to write (rss ${(rss / 2 ** 20).toFixed(0)} MiB); another tenant: ${tenant.map((t) => `${t.method} ${t.status} in ${t.ms} ms`).join(", ")}`,
    );
    expect(tenant.map((t) => t.status)).toEqual([200, 200]);
    // One caller has at most 16 answers being written at once; past it, `too_many_calls`.
    expect(served).toBeLessThanOrEqual(16);
    expect(served + refused).toBe(HOARDED);
    for (const refusal of refusals) expect(refusal).toContain('"code":-31032');
    // What is held is what 16 answers can be, not what 40 are.
    expect(holding).toBeLessThan(17 * TOOLS * 10_000);
  }, 90_000);

  /**
   * A fresh 2025-03-26 session's `count` batches of `lists` tool lists, each read slowly on a
   * connection of its own (the last test's slow readers closed first): every answer's status and
   * refusal, how long they took to come, and what the gateway holds to write once they have.
   */
  const hoardBatches = async (lists: number, count: number) => {
    readers.close();
    await new Promise((r) => setTimeout(r, 500));
    const url = new URL(stack.mcpUrl("big"));
    const { headers: session } = await rawSession(url.href, keys.hoarder!, "2025-03-26");
    // Ids of their own: a session refuses an id it has pending (409).
    const body = (n: number) => JSON.stringify(Array.from({ length: lists }, (_, i) => ({ jsonrpc: "2.0", id: `${n}-${i}`, method: "tools/list", params: {} })));
    const before = heldBytes();
    const hoarded = await hoard((n) => rawPost(url, session, body(n)), count);
    // Each 2025 list is built and checked by the SDK (~6 MB): the answers take seconds to come.
    const started = Date.now();
    while (hoarded.firsts.length < count && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 200));
    const ms = Date.now() - started;
    await new Promise((r) => setTimeout(r, 2_000));
    const statuses = hoarded.statuses();
    return { statuses, refusals: hoarded.refusals(), served: statuses.filter((s) => s === "200").length, ms, holdingMiB: Math.round((heldBytes() - before) / 2 ** 20) };
  };

  // A 2025 answer on an event stream (a batch's) is not ended while the SDK still sends it: it
  // counts from its first bytes left unwritten. One batch of 40 lists held ~240 MB unread.
  test("attack: one consumer's slowly read 2025-03-26 batches of tool lists are bounded too", async () => {
    const { statuses, refusals, served, ms, holdingMiB } = await hoardBatches(2, 24);
    console.log(`[measure] 24 batches of 2 tool lists read 4 KB/100 ms by one consumer: ${served} answered 200, ${refusals.length} refused 429 within ${ms} ms [${statuses.join(",")}]; the gateway holds ${holdingMiB} MiB to write`);
    // 16 places, 2 a batch.
    expect(served).toBeLessThanOrEqual(8);
    expect(served + refusals.length).toBe(24);
  }, 90_000);

  // helper-165: a batch took one place whatever it held, and a batch holds up to 4 lists: 16
  // batches of 4 were 64 lists being written to one caller (8 batches: 8 served, 46 MiB held to
  // write 2 s on). Each list in a batch takes a place now (4 served, 23 MiB).
  test("attack: each list of a slowly read 2025-03-26 batch takes a place of its own", async () => {
    const { statuses, refusals, served, holdingMiB } = await hoardBatches(4, 8);
    console.log(`[measure] 8 batches of 4 tool lists read 4 KB/100 ms by one consumer: ${served} answered 200, ${refusals.length} refused 429; the gateway holds ${holdingMiB} MiB to write [${statuses.join(",")}]`);
    // 16 places, 4 a batch.
    expect(served).toBeLessThanOrEqual(4);
    expect(served + refusals.length).toBe(8);
    for (const refusal of refusals) expect(refusal).toContain('"code":-32032');
    expect(holdingMiB * 2 ** 20).toBeLessThan(17 * TOOLS * 10_000);
  }, 120_000);
});
