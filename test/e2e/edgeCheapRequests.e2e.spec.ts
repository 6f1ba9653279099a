import type { NatsServer } from "@manifold/nats-server";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack (20th finding of the attacker rounds): nothing bounded how many requests one caller sends
// that never go upstream. One consumer on 32 connections sending 2025-03-26 batches of 100 pings
// raised another tenant's median call from 4-6.5 ms to 1.4-1.7 s; 2026-07-28 `server/discover`
// (each served by the SDK, ~2 ms) raised it to 266 ms.

const ACCEPT = "application/json, text/event-stream";
const MODERN = "2026-07-28";
let nats: NatsServer;
let stack: Stack;
let recording: RecordingUpstream;
let writer: MutableUpstream;
let keys: Record<string, string>;
let echo: string;

beforeAll(async () => {
  nats = await startNats();
  [stack, recording, writer] = await Promise.all([
    startStack(nats.url, { GATEWAY_AUTH: "required" }),
    startRecordingUpstream(),
    startMutableUpstream([], "1.0.0", [{ name: "draft", description: "Drafts a reply" }]),
  ]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } }, { name: "writer", transport: { type: "streamable-http", url: writer.url } });
  echo = (await createVirtualServer(stack, "shared", [{ upstream: "rec", tool: "echo" }]))["rec/echo"]!;
  keys = await grantedConsumers(stack, "shared", ["mallory", "victim"]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await recording?.close();
  await writer?.close();
  await nats?.stop();
});

const post = (key: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(stack.mcpUrl("shared"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}`, ...headers }, body: JSON.stringify(body) });

/** A 2026-07-28 request as a 2.x client sends it. */
const modern = (method: string, params: Record<string, unknown>, id: number) => ({
  body: { jsonrpc: "2.0", id, method, params: { ...params, _meta: { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} } } },
  headers: { "mcp-protocol-version": MODERN, "mcp-method": method, ...(typeof params.name === "string" ? { "mcp-name": params.name } : {}) } as Record<string, string>,
});

/** The victim's calls, one after another, for `ms`: their median latency. */
async function victimMedian(ms: number): Promise<{ median: number; calls: number; failed: number }> {
  const times: number[] = [];
  let failed = 0;
  for (let id = 1, until = performance.now() + ms; performance.now() < until; id++) {
    const { body, headers } = modern("tools/call", { name: echo, arguments: { message: "hi" } }, id);
    const started = performance.now();
    const res = await post(keys.victim!, body, headers);
    const text = await res.text();
    if (res.status !== 200 || !text.includes("hi")) failed++;
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { median: Math.round(times[Math.floor(times.length / 2)]!), calls: times.length, failed };
}

type Flood = "pings" | "discover" | "notifications";

/**
 * Mallory's loops, each sending its next request back to back until stopped, in a worker thread:
 * in this process they would spend the event loop the gateway serves the victim on, as an attacker
 * elsewhere does not. `kind` picks the request; the worker counts answers by status.
 */
function flood(loops: number, kind: Flood, headers: Record<string, string>) {
  const source = `
    const { parentPort, workerData: { url, headers, kind, loops } } = require("node:worker_threads");
    let stop = false, n = 0;
    const statuses = {};
    const meta = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "m", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
    const next = () => kind === "pings"
      ? JSON.stringify(Array.from({ length: 100 }, () => ({ jsonrpc: "2.0", id: "p" + n++, method: "ping" })))
      : kind === "notifications"
        ? JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: n++, _meta: meta } })
        : JSON.stringify({ jsonrpc: "2.0", id: n++, method: "server/discover", params: { _meta: meta } });
    parentPort.on("message", () => (stop = true));
    Promise.all(Array.from({ length: loops }, async () => {
      while (!stop) {
        const res = await fetch(url, { method: "POST", headers, body: next() }).catch(() => undefined);
        if (res) statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        await res?.arrayBuffer().catch(() => undefined);
      }
    })).then(() => parentPort.postMessage(statuses));
  `;
  const worker = new Worker(source, { eval: true, workerData: { url: stack.mcpUrl("shared"), headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${keys.mallory}`, ...headers }, kind, loops } });
  const statuses = new Promise<Record<number, number>>((resolve) => worker.once("message", resolve));
  return {
    stop: async () => {
      worker.postMessage("stop");
      const counted = await statuses;
      await worker.terminate();
      return counted;
    },
  };
}

/**
 * The victim's median call alone, then while mallory floods: the victim still served, within ten
 * times its own median (or 100 ms); returns mallory's answers by status.
 */
async function victimUnderFlood(kind: Flood, headers: Record<string, string>): Promise<Record<number, number>> {
  const baseline = await victimMedian(1_000);
  const attack = flood(32, kind, headers);
  await new Promise((r) => setTimeout(r, 300));
  const during = await victimMedian(3_000);
  const statuses = await attack.stop();
  const message = `victim median ${baseline.median} ms (${baseline.calls} calls) -> ${during.median} ms (${during.calls} calls, ${during.failed} failed) during the flood; mallory's answers by status ${JSON.stringify(statuses)}`;
  console.log(message);
  expect(during.failed, message).toBe(0);
  expect(during.median, message).toBeLessThan(Math.max(100, baseline.median * 10));
  return statuses;
}

describe("one caller's requests that never go upstream", () => {
  test("batches of pings from one consumer do not stall another tenant's calls", async () => {
    const init = await post(keys.mallory!, { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "m", version: "1" } } });
    const h2025 = { "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-03-26" };
    await init.text();
    await (await post(keys.mallory!, { jsonrpc: "2.0", method: "notifications/initialized" }, h2025)).text();
    const statuses = await victimUnderFlood("pings", h2025);
    // Mallory is told to slow down, not served without end.
    expect(statuses[429] ?? 0, JSON.stringify(statuses)).toBeGreaterThan(0);
  }, 60_000);

  // review: priced by method name, a notification cost 1 unit while the 2.x SDK built a whole server for it.
  // Then, at 10 units, 100 a second still cost the SDK 10-20 % of a core (a server built for each, to answer 202):
  // the fast path answers them 202 itself.
  test("2026-07-28 notifications from one consumer do not stall another tenant's calls", async () => {
    const headers = { "mcp-protocol-version": MODERN, "mcp-method": "notifications/cancelled" };
    const one = await post(keys.victim!, { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 1 } }, headers);
    expect([one.status, await one.text()]).toEqual([202, ""]);
    const statuses = await victimUnderFlood("notifications", headers);
    expect(statuses[202] ?? 0, JSON.stringify(statuses)).toBeGreaterThan(100);
  }, 60_000);

  // After the first, the fast path answers with the SDK's own result for what the caller sees (before: ~2 ms each in the SDK).
  test("server/discover from one consumer does not stall another tenant's calls", async () => {
    const statuses = await victimUnderFlood("discover", { "mcp-protocol-version": MODERN, "mcp-method": "server/discover" });
    expect((statuses[200] ?? 0) + (statuses[429] ?? 0), JSON.stringify(statuses)).toBeGreaterThan(100);
  }, 60_000);

  test("a server/discover the fast path answers is the SDK's own answer, and follows the virtual server's changes", async () => {
    const discover = async (id: number) => {
      const { body, headers } = modern("server/discover", {}, id);
      const res = await post(keys.victim!, body, headers);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("application/json");
      return (await res.json()) as { id: number; result: { capabilities: Record<string, unknown> } };
    };
    const first = await discover(101);
    const second = await discover(102);
    expect(second.id).toBe(102);
    expect(second).toEqual({ ...first, id: 102 });
    expect(first.result.capabilities.prompts).toBeUndefined();
    // The virtual server now offers a prompt: the next discovery says so, from whichever path answers it.
    expect((await stack.admin.post("/v1/virtual-servers/shared/prompts", { prompts: [{ upstream: "writer", prompt: "draft" }] })).status).toBeLessThan(300);
    let latest = await discover(103);
    for (let i = 0; i < 50 && latest.result.capabilities.prompts === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
      latest = await discover(104 + i);
    }
    expect(latest.result.capabilities.prompts).toBeDefined();
    const again = await discover(200);
    expect(again).toEqual({ ...latest, id: 200 });
  });

  test("a kept server/discover is per denied set: a caller denied the only prompt never gets another caller's answer", async () => {
    // A virtual server of its own, with one prompt that carol's grant hides: her view has no prompts.
    await createVirtualServer(stack, "split", [{ upstream: "rec", tool: "echo" }]);
    expect((await stack.admin.post("/v1/virtual-servers/split/prompts", { prompts: [{ upstream: "writer", prompt: "draft" }] })).status).toBeLessThan(300);
    const { victim } = await grantedConsumers(stack, "split", ["victim"]);
    expect((await stack.admin.post("/v1/consumers", { name: "carol" })).status).toBe(201);
    const carol = (await stack.admin.post("/v1/consumers/carol/keys", {})).body.key as string;
    const hidden = { grantId: "carol", subject: { consumer: "carol" }, deniedPrompts: [{ upstream: "writer", prompt: "draft" }] };
    expect((await stack.admin.post("/v1/virtual-servers/split/grants", hidden)).status).toBe(201);
    const discover = async (key: string, id: number) => {
      const { body, headers } = modern("server/discover", {}, id);
      const res = await fetch(stack.mcpUrl("split"), { method: "POST", headers: { "content-type": "application/json", accept: ACCEPT, authorization: `Bearer ${key}`, ...headers }, body: JSON.stringify(body) });
      return { status: res.status, capabilities: res.status === 200 ? ((await res.json()) as { result: { capabilities: Record<string, unknown> } }).result.capabilities : undefined };
    };
    // Until her grant reaches the gateway, carol is refused.
    for (let i = 0; i < 100 && (await discover(carol, 300 + i)).status !== 200; i++) await new Promise((r) => setTimeout(r, 20));
    // Taking turns, each three times: a view's first discovery is the SDK's, the next ones are kept answers.
    for (let round = 0; round < 3; round++) {
      expect((await discover(victim!, 400 + round)).capabilities?.prompts, `victim, round ${round}`).toBeDefined();
      expect((await discover(carol, 500 + round)).capabilities, `carol, round ${round}`).toMatchObject({ tools: {} });
      expect((await discover(carol, 600 + round)).capabilities?.prompts, `carol, round ${round}`).toBeUndefined();
    }
  });
});
