import type { NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { grantedConsumers } from "../helpers/catalog.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack2: a 2025 client that starts tools/calls and closes each POST stream at once. A disconnect is not a
// cancellation (2025 transport spec), so the call runs on; but the gateway lets go of it in
// GATEWAY_MAX_CALLS_PER_PRINCIPAL at that moment, so one caller keeps any number running and queued.

const FIXTURE = new URL("../fixtures/hostileStdioLifecycle.mjs", import.meta.url).pathname;
const BOUND = 16;
let nats: NatsServer;
let stack: Stack;
let dir: string;

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "attack2-abandon-"));
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_CALLS_PER_PRINCIPAL: String(BOUND), CONNECTOR_MAX_CONCURRENCY: "400", CONNECTOR_TOOL_SHARE: "1" });
});
afterAll(async () => {
  await stack?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const headers = (key: string, session?: string) => ({
  authorization: `Bearer ${key}`,
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  "mcp-protocol-version": "2025-06-18",
  ...(session ? { "mcp-session-id": session } : {}),
});

test("calls whose POST stream was closed still count against the caller's calls in flight while they run", async () => {
  const callLog = join(dir, "calls.log");
  await stack.admin.post("/v1/upstreams", { name: "slow", transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { CALL_LOG: callLog }, protocol: "2025" }, options: { callTimeoutMs: 60_000 } });
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "shared", tools: [{ upstream: "slow", tool: "sleep" }] });
  const sleepTool = vs.body.tools[0].exposedName as string;
  const keys = await grantedConsumers(stack, "shared", ["attacker"]);
  const url = stack.mcpUrl("shared");
  const init = await fetch(url, { method: "POST", headers: headers(keys.attacker!), body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "a", version: "1" } } }) });
  await init.text();
  const session = init.headers.get("mcp-session-id")!;
  await (await fetch(url, { method: "POST", headers: headers(keys.attacker!, session), body: JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) })).text();

  // 200 calls of a 20 s tool, each POST stream closed 50 ms after it was sent.
  const pad = "p".repeat(100_000);
  let refused = 0;
  for (let i = 0; i < 200; i++) {
    const abort = new AbortController();
    const sent = fetch(url, {
      method: "POST",
      headers: headers(keys.attacker!, session),
      body: JSON.stringify({ jsonrpc: "2.0", id: i + 1, method: "tools/call", params: { name: sleepTool, arguments: { ms: 20_000, pad } } }),
      signal: abort.signal,
    }).then(
      async (r) => {
        if (r.status === 429) refused++;
        abort.abort();
      },
      () => undefined,
    );
    setTimeout(() => abort.abort(), 50);
    if (i % 20 === 19) await sent;
  }
  await new Promise((r) => setTimeout(r, 3_000));
  const running = (await readFile(callLog, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
  global.gc?.();
  // Before: every abandoned call was released from the caller's bound at once and kept running upstream.
  expect(running, `${running} of the caller's 200 abandoned 20 s calls run at the upstream at once (GATEWAY_MAX_CALLS_PER_PRINCIPAL=${BOUND}; ${refused} refused with 429)`).toBeLessThanOrEqual(BOUND);
}, 120_000);
