import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// An upstream's history holds an event per change of its lists, each up to one bus message (1 MiB
// by default), and the upstream decides what its lists say. A page of history (or of the audit
// trail) was bounded by its count alone: the console asks 100 a page, `manifold history` 1,000.

const EVENTS = 40;
let nats: NatsServer;
let stack: Stack;
let upstream: MutableUpstream;

// ~400 KB of description a definition: each change is an event of ~800 KB (the definition and its diff).
const tool = (n: number) => ({ name: "lookup", description: `${n} ${"d".repeat(400_000)}`, inputSchema: { type: "object" as const } });

beforeAll(async () => {
  nats = await startNats();
  upstream = await startMutableUpstream([tool(0)]);
  stack = await startStack(nats.url);
  await registerUpstreams(stack, { name: "big", transport: { type: "streamable-http", url: upstream.url } });
  for (let n = 1; n < EVENTS; n++) {
    await upstream.change([tool(n)]);
    expect((await stack.admin.post("/v1/upstreams/big/discover", {})).status).toBeLessThan(300);
  }
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("attack: a page of history is bounded by its bytes; paging on reads every event once, in order", async () => {
  const read = async (after?: number) => {
    const res = await fetch(`${stack.admin.baseUrl}/v1/upstreams/big/history?limit=1000${after === undefined ? "" : `&after=${after}`}`, {
      headers: { authorization: `Bearer ${stack.admin.token}` },
    });
    const text = await res.text();
    return { bytes: text.length, page: JSON.parse(text) as { items: { sequence: number; type: string }[]; next?: number } };
  };
  const first = await read();
  // Before: one page of 8–41 MB in this test's runs (as many events as 2 s of reading reached).
  expect(first.bytes).toBeLessThan(6 * 1024 * 1024);
  expect(first.page.next).toBeDefined();
  const sequences = first.page.items.map((e) => e.sequence);
  for (let next = first.page.next; next !== undefined; ) {
    const { bytes, page } = await read(next);
    expect(bytes).toBeLessThan(6 * 1024 * 1024);
    sequences.push(...page.items.map((e) => e.sequence));
    next = page.next;
  }
  // The registration, then a discovery for each definition: none missed, none twice.
  expect(sequences.length).toBeGreaterThan(EVENTS);
  expect(new Set(sequences).size).toBe(sequences.length);
  expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
});
