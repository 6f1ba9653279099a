import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { MutableUpstream } from "../fixtures/mutableUpstream.js";
import { startBigListStack } from "../helpers/bigLists.js";
import { grantedConsumers } from "../helpers/catalog.js";
import type { Stack } from "../helpers/stack.js";

// A 2025-03-26 JSON-RPC batch is answered whole: the SDK builds every answer of it before the
// response is written. 40 tools/list of a virtual server whose list is ~6 MB, in one batch of one
// request (one answer being written, one request of the caller's budget per message), held all
// 40 lists in the gateway's memory at once. The gateway runs in this process (startStack).
const TOOLS = 600;
const LISTS = 40;
const ACCEPT = "application/json, text/event-stream";

let nats: NatsServer;
let stack: Stack;
let upstream: MutableUpstream;
let h2025: Record<string, string>;

beforeAll(async () => {
  ({ nats, upstream, stack } = await startBigListStack(TOOLS));
  const key = (await grantedConsumers(stack, "big", ["hoarder"])).hoarder!;
  const init = await fetch(stack.mcpUrl("big"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}` }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "m", version: "1" } } }) });
  await init.text();
  h2025 = { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}`, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-03-26" };
  await (await fetch(stack.mcpUrl("big"), { method: "POST", headers: h2025, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

let nextId = 10;
/** Ids never used before in the session: an answer left unread keeps its ids in flight. */
const batch = (lists: number) => JSON.stringify(Array.from({ length: lists }, () => ({ jsonrpc: "2.0", id: nextId++, method: "tools/list" })));

/** Posts a batch of `lists` tools/list, its answer left unread for 2 s, and the most memory this process held meanwhile past where it began. */
async function heldBy(lists: number): Promise<{ status: number; peakMiB: number; body: unknown }> {
  globalThis.gc?.();
  const base = process.memoryUsage();
  let peak = 0;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
  }, 20);
  const res = await fetch(stack.mcpUrl("big"), { method: "POST", headers: h2025, body: batch(lists) });
  await new Promise((r) => setTimeout(r, 2_000));
  clearInterval(sampler);
  const body = res.status === 200 ? undefined : await res.json();
  if (res.status === 200) await res.body?.cancel();
  return { status: res.status, peakMiB: Math.round(peak / 2 ** 20), body };
}

test("attack: one 2025-03-26 batch of 40 tools/list of ~6 MB does not hold 40 lists in the gateway's memory", async () => {
  const one = await heldBy(1);
  const many = await heldBy(LISTS);
  console.log(JSON.stringify({ oneList: one, [`${LISTS}Lists`]: many }));
  expect(one.status).toBe(200);
  // Before: 200, 185 MiB held while the answer sat unread (one list: 12-22 MiB).
  expect(many.status, "a batch of 40 lists").toBe(400);
  expect((many.body as { error: { code: number; message: string } }).error.code).toBe(-32600);
  expect(many.peakMiB, "MiB held for the batch").toBeLessThan(64);
}, 60_000);

test("a batch of up to 4 lists is served", async () => {
  const four = await heldBy(4);
  console.log(JSON.stringify({ fourLists: four }));
  expect(four.status).toBe(200);
  const res = await fetch(stack.mcpUrl("big"), { method: "POST", headers: h2025, body: batch(4) });
  expect(res.status).toBe(200);
  expect((await res.text()).length).toBeGreaterThan(4 * 5_000_000);
}, 60_000);
