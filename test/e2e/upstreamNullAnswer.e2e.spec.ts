import type { NatsServer } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const FIXTURE = new URL("../fixtures/hostileAnswerUpstream.mjs", import.meta.url).pathname;
let nats: NatsServer; let stack: Stack; let child: ChildProcess; let names: Record<string, string>;
const uncaught: unknown[] = [];
process.on("uncaughtException", (e) => uncaught.push(e));
beforeAll(async () => {
  nats = await startNats();
  stack = await startStack(nats.url);
  child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, ANSWER: "null" } });
  const [first] = await once(child.stdout!, "data");
  await registerUpstreams(stack, { name: "n", transport: { type: "streamable-http", url: String(first).trim() } });
  names = await createVirtualServer(stack, "v", [{ upstream: "n", tool: "bad" }, { upstream: "n", tool: "good" }]);
}, 60_000);
afterAll(async () => { child?.kill(); await stack?.close(); await nats?.stop(); });

// attack (helper-92): a body of `null` was read as a message, threw a TypeError taken for an unreachable
// upstream, and dropped the shared session and counted on the breaker: another caller lost the upstream.
test("attack: a tools/call answered with JSON null is that call's error only", async () => {
  const client = await connectHttp(stack.mcpUrl("v"));
  const t = Date.now();
  const r = await client.callTool({ name: names["n/bad"]!, arguments: {} }).then((x) => JSON.stringify(x), (e: Error) => "ERR " + e.message);
  const took = Date.now() - t;
  const g = await client.callTool({ name: names["n/good"]!, arguments: {} }).then((x) => JSON.stringify(x), (e: Error) => "ERR " + e.message);
  expect(r).toMatch(/^ERR /);
  expect(r).not.toMatch(/Cannot read properties/);
  expect(g).toContain("ok");
  expect(took).toBeLessThan(2000);
  expect(uncaught).toEqual([]);
}, 120_000);

test("attack: one caller's calls answered with null, in a loop, cost another caller none of its calls", async () => {
  const mallory = await connectHttp(stack.mcpUrl("v"));
  const alice = await connectHttp(stack.mcpUrl("v"));
  // wait until good works
  for (let i = 0; i < 100; i++) { if (await alice.callTool({ name: names["n/good"]!, arguments: {} }).then(() => true, () => false)) break; await new Promise((r) => setTimeout(r, 100)); }
  const t0 = Date.now();
  let stop = false;
  const attack = (async () => { while (!stop) { await mallory.callTool({ name: names["n/bad"]!, arguments: {} }).catch(() => undefined); await new Promise((r) => setTimeout(r, 50)); } })();
  let ok = 0, failed = 0; const msgs = new Set<string>();
  while (Date.now() - t0 < 3_000) {
    await alice.callTool({ name: names["n/good"]!, arguments: {} }).then(() => ok++, (e: Error) => { failed++; msgs.add(e.message.slice(0, 120)); });
    await new Promise((r) => setTimeout(r, 50));
  }
  stop = true; await attack;
  expect(failed, [...msgs].join("; ")).toBe(0);
  expect(ok).toBeGreaterThan(0);
}, 120_000);
