import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// What one caller's calls may leave behind for every tenant: series in the gateway's metrics (kept
// for the process's life) and records in the audit stream (shared, keeping the newest bytes).
// A tool name is the caller's text until it routes; a recorded value is the caller's and the upstream's.

let nats: NatsServer;
let stack: Stack;
let recording: RecordingUpstream;
let keys: Record<string, string>;
let names: Record<string, string>;

beforeAll(async () => {
  nats = await startNats();
  // A 200 KB body costs ~46 units of its caller's budget (gatewayWideBodies.e2e): one wide enough for 40 in a row.
  [stack, recording] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "10000" }), startRecordingUpstream()]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
  names = await createVirtualServer(stack, "plain", [{ upstream: "rec", tool: "echo" }]);
  await createVirtualServer(stack, "recorded", [{ upstream: "rec", tool: "echo" }]);
  expect((await stack.admin.request("PUT", "/v1/virtual-servers/recorded/audit", { recordValues: true, redactFields: [] })).status).toBeLessThan(300);
  keys = { ...(await grantedConsumers(stack, "plain", ["mallory"])), ...(await grantedConsumers(stack, "recorded", ["trent"])) };
});

afterAll(async () => {
  await stack?.close();
  await recording?.close();
  await nats?.stop();
});

/** A raw 2025-11-25 session over fetch: initialize, then tools/call with its Mcp-Session-Id. */
async function legacySession(url: string, key: string) {
  const base = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` };
  const init = await fetch(url, {
    method: "POST",
    headers: base,
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "raw", version: "1" } } }),
  });
  await init.text();
  const headers = { ...base, "mcp-session-id": init.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-11-25" };
  await (await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();
  let id = 1;
  return async (name: string, args: Record<string, unknown> = {}) => {
    const res = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", id: id++, method: "tools/call", params: { name, arguments: args } }) });
    const text = await res.text();
    const json = text.startsWith("{") ? text : text.split("\n").filter((l) => l.startsWith("data:")).pop()!.slice(5);
    return { text, body: JSON.parse(json) as { result?: unknown; error?: { message: string; data?: { code?: string; tool?: string } } } };
  };
}

const metricsText = async () => (await fetch(`http://127.0.0.1:${(stack.gateway.metricsApp.server.address() as { port: number }).port}/metrics`)).text();
const auditOf = async (consumer: string, count: number) =>
  eventually(async () => {
    const items = (await stack.admin.get(`/v1/audit?consumer=${consumer}&limit=1000`)).body.items as Record<string, unknown>[];
    return items.length >= count ? items : undefined;
  }, 5_000);

test("attack: calls naming distinct 200 KB unknown tools leave no series, no long record and no long answer behind", async () => {
  const call = await legacySession(stack.mcpUrl("plain"), keys.mallory!);
  expect((await call("warm")).body.error?.data?.code).toBe("unknown_tool");
  const before = (await metricsText()).length;
  for (let i = 0; i < 40; i++) {
    const answer = await call(`${i}-${"x".repeat(200 * 1024)}`);
    expect(answer.body.error?.data?.code).toBe("unknown_tool");
    // The answer names the tool cut to what a name can be: not an amplifier of the request.
    expect(answer.body.error!.data!.tool!.length).toBeLessThanOrEqual(65);
    expect(answer.text.length).toBeLessThan(1_024);
  }
  // Before: every name was a series of its own (40 × 200 KB in /metrics).
  expect((await metricsText()).length - before).toBeLessThan(4 * 1024);
  const records = await auditOf("mallory", 41);
  const invalid = records.filter((r) => r.exposedTool === "(invalid)");
  expect(invalid).toHaveLength(40);
  expect(Math.max(...records.map((r) => JSON.stringify(r).length))).toBeLessThan(2 * 1024);
  // A well-formed name that routes nowhere is still recorded as asked, and counted as unknown.
  expect(records.some((r) => r.exposedTool === "warm" && r.errorCode === "unknown_tool")).toBe(true);
  expect(await metricsText()).toMatch(/manifold_gateway_tool_calls_total\{[^}]*tool="\(unknown\)"[^}]*consumer="mallory"[^}]*\} 41/);
});

test("attack: where values are recorded, a call's large values are left out of its record; small ones are kept", async () => {
  const call = await legacySession(stack.mcpUrl("recorded"), keys.trent!);
  expect((await call(names["rec/echo"]!, { message: "small" })).body.result).toBeDefined();
  expect((await call(names["rec/echo"]!, { message: "t".repeat(200 * 1024) })).body.result).toBeDefined();
  const records = await auditOf("trent", 2);
  const small = records.find((r) => JSON.stringify(r.arguments ?? {}).includes("small"));
  expect(small?.result).toBeDefined();
  const large = records.find((r) => r.valuesOmitted === "too_large");
  // Before: a ~400 KB record (the arguments and their echo), pushing other tenants' records out of the shared stream.
  expect(large).toBeDefined();
  expect(large!.arguments).toBeUndefined();
  expect(JSON.stringify(large).length).toBeLessThan(2 * 1024);
});
