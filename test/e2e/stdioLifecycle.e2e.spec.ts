import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";
import { TEST_STDIO_COMMANDS } from "../helpers/upstreams.js";
import { wholeVirtualServer } from "../helpers/admin.js";

// attack2: the life cycle of a stdio upstream's processes in the connector (its own process here,
// so what it leaves behind and how long it takes to stop are measured as in production).

const FIXTURE = new URL("../fixtures/hostileStdioLifecycle.mjs", import.meta.url).pathname;
const CALM = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;

let nats: NatsServer;
let stack: Stack;
let dir: string;
let connector: ServiceProcess | undefined;
const tag = `attack2life-${process.pid}`;

/** Live processes (not zombies) whose command line or environment names `marker`. */
async function live(marker: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const [cmd, env, stat] = await Promise.all([
        readFile(`/proc/${entry}/cmdline`, "utf8"),
        readFile(`/proc/${entry}/environ`, "utf8").catch(() => ""),
        readFile(`/proc/${entry}/stat`, "utf8"),
      ]);
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state !== "Z" && (cmd.includes(marker) || env.includes(`MARKER=${marker}`))) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startConnector(): Promise<ServiceProcess> {
  const port = await freePort();
  const c = spawnService("connector", serviceEntry("connector"), [], { ...busEnv(nats, "connector"), CONNECTOR_PORT: String(port), LOG_LEVEL: "info", MANIFOLD_STDIO_COMMANDS: TEST_STDIO_COMMANDS }, join(dir, "connector.log"));
  await c.ready(`http://127.0.0.1:${port}/readyz`);
  return c;
}

const register = (name: string, env: Record<string, string>, options: Record<string, unknown> = {}) =>
  stack.admin.post("/v1/upstreams", {
    name,
    transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { MARKER: `${tag}-${name}`, SPAWN_LOG: join(dir, `${name}.spawns`), ...env }, protocol: "2025" },
    options: { callTimeoutMs: 5_000, ...options },
  });
const spawns = async (name: string) => (await readFile(join(dir, `${name}.spawns`), "utf8").catch(() => "")).trim().split("\n").filter(Boolean).length;

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "attack2-life-"));
  stack = await startStack(nats.url, {}, { connector: false });
});

afterEach(async () => {
  await connector?.stop(15_000);
  connector = undefined;
  for (const name of (await stack.admin.get("/v1/upstreams")).body.items?.map((u: { name: string }) => u.name) ?? []) await stack.admin.delete(`/v1/upstreams/${name}`);
  // What the connector left behind is ours to end.
  for (const pid of await live(tag)) process.kill(pid, "SIGKILL");
});

afterAll(async () => {
  await stack?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("a helper process a stdio upstream started is ended with the upstream when it is deleted", async () => {
  connector = await startConnector();
  const res = await register("orphans", { GRANDCHILD: "ignore" });
  expect(res.body.discovery?.status).toBe("ok");
  await sleep(500);
  const before = await live(`${tag}-orphans`);
  // The upstream's process and its helper (its probe-free 2025 registration spawns it once).
  expect(before.length).toBe(2);
  expect((await stack.admin.delete("/v1/upstreams/orphans")).status).toBe(204);
  await sleep(6_000);
  const after = await live(`${tag}-orphans`);
  // Before: the upstream's own process was ended, its helper (same process group, never signalled) lives on, re-parented to init.
  expect(after, `6 s after DELETE, ${after.length} of the upstream's ${before.length} processes still run (pids ${after.join(", ")})`).toEqual([]);
}, 60_000);

test("a connector stopped with SIGTERM leaves none of its stdio upstreams' processes running", async () => {
  connector = await startConnector();
  expect((await register("left", { GRANDCHILD: "ignore" })).body.discovery?.status).toBe("ok");
  await sleep(500);
  const before = await live(`${tag}-left`);
  expect(before.length).toBe(2);
  const started = Date.now();
  await connector.stop(30_000);
  const outcome = await connector.exited;
  const tookMs = Date.now() - started;
  await sleep(500);
  const after = await live(`${tag}-left`);
  expect(outcome).toBe("exit code 0");
  expect(after, `after the connector exited (${tookMs} ms), ${after.length} of the upstream's processes still run`).toEqual([]);
}, 60_000);

test("an upstream whose process died is restarted even while a helper it started still holds its stdout", async () => {
  connector = await startConnector();
  expect((await register("holder", { GRANDCHILD: "inherit" })).body.discovery?.status).toBe("ok");
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "holder", tools: [{ upstream: "holder", tool: "echo" }, { upstream: "holder", tool: "crash" }] });
  const names = Object.fromEntries(vs.body.tools.map((t: { tool: string; exposedName: string }) => [t.tool, t.exposedName]));
  await using agent = await connectHttp(stack.mcpUrl("holder"));
  await agent.callTool({ name: names.crash!, arguments: {} });
  // The upstream process is gone; give the connector 15 s (its backoff starts at 250 ms) to notice and restart it.
  const deadline = Date.now() + 15_000;
  const failures: string[] = [];
  let answered = false;
  while (Date.now() < deadline && !answered) {
    const started = Date.now();
    const outcome = await agent.callTool({ name: names.echo!, arguments: { message: "back" } }).then(
      (r) => JSON.stringify(r),
      (e: Error) => e.message,
    );
    answered = outcome.includes("echo: back");
    if (!answered) failures.push(`${Date.now() - started} ms: ${outcome.slice(0, 80)}`);
    else break;
    await sleep(500);
  }
  const health = (await stack.admin.get("/v1/upstreams/holder")).body.health?.status;
  // Before: the SDK transport waits for the child's "close" (every stdio stream closed), which the helper
  // holding stdout never allows: the connector never learns the process exited, never restarts it, reports it
  // `up`, and every call waits its whole timeout.
  expect(
    answered,
    `no call answered within 15 s of the upstream's exit (spawned ${await spawns("holder")} time(s), health '${health}'); ${failures.length} calls failed: ${failures.slice(0, 3).join(" | ")}`,
  ).toBe(true);
}, 60_000);

test("a stdio upstream that never answers initialize, once deleted, holds up no other upstream's registration", async () => {
  connector = await startConnector();
  const silent = await register("silent", { NEVER_INIT: "1" });
  expect(silent.status).toBe(201);
  await sleep(1_000);
  expect((await stack.admin.delete("/v1/upstreams/silent")).status).toBe(204);
  // Another operator registers an unrelated, healthy upstream on the same connector.
  const started = Date.now();
  const calm = await stack.admin.post("/v1/upstreams", { name: "calm", transport: { type: "stdio", command: process.execPath, args: [CALM], protocol: "2025" } });
  const registeredMs = Date.now() - started;
  // Before: deleting the upstream waits for its pending `initialize` (the SDK's 60 s request timeout), and
  // the connector applies registrations one after another: nothing else changes on it meanwhile.
  expect(calm.body.discovery?.status, `the unrelated upstream's discovery answered after ${registeredMs} ms: ${JSON.stringify(calm.body.discovery)}`).toBe("ok");
  await stack.admin.post("/v1/virtual-servers", { name: "calm", tools: [{ upstream: "calm", tool: "echo" }] });
  const exposed = (await wholeVirtualServer(stack.admin, "calm")).tools[0].exposedName as string;
  await using agent = await connectHttp(stack.mcpUrl("calm"));
  let servedMs = -1;
  while (Date.now() - started < 30_000) {
    const ok = await agent.callTool({ name: exposed, arguments: { message: "hi" } }).then((r) => JSON.stringify(r).includes("echo: hi"), () => false);
    if (ok) {
      servedMs = Date.now() - started;
      break;
    }
    await sleep(250);
  }
  expect(servedMs, `the unrelated upstream was first served ${servedMs} ms after its registration (-1: not within 30 s)`).toBeGreaterThan(0);
  expect(servedMs).toBeLessThan(5_000);
}, 90_000);

test("a connector stopped with SIGTERM while a stdio upstream never answers initialize exits cleanly and ends that process", async () => {
  connector = await startConnector();
  expect((await register("mute", { NEVER_INIT: "1" })).status).toBe(201);
  const deadline = Date.now() + 10_000;
  while ((await live(`${tag}-mute`)).length === 0 && Date.now() < deadline) await sleep(100);
  await sleep(500);
  expect((await live(`${tag}-mute`)).length).toBe(1);
  const started = Date.now();
  await connector.stop(30_000);
  const outcome = await connector.exited;
  const tookMs = Date.now() - started;
  await sleep(500);
  const left = await live(`${tag}-mute`);
  // Before: closing the upstream awaited its connection attempt (60 s), so the shutdown ran into its 10 s
  // grace, exited with status 1, and the upstream's process was never signalled.
  expect({ outcome, left: left.length }, `the connector ended with '${outcome}' after ${tookMs} ms; ${left.length} upstream process(es) still run`).toEqual({ outcome: "exit code 0", left: 0 });
}, 60_000);

test("an upstream that exits right after initialize is restarted with a growing back-off, not every ~0.5 s for ever", async () => {
  connector = await startConnector();
  await register("storm", { EXIT_AFTER_INIT_MS: "100" });
  const first = await spawns("storm");
  await sleep(20_000);
  const inTwenty = (await spawns("storm")) - first;
  const logLines = (await readFile(join(dir, "connector.log"), "utf8")).split("\n").filter((l) => l.includes('"upstream":"storm"')).length;
  // A back-off doubling from 250 ms (reset only after a connection that lasted) spawns it ~7 times in 20 s.
  // Before: a connection that initialized resets the back-off, so the process is spawned again ~250 ms after each exit, for ever.
  expect(inTwenty, `spawned ${inTwenty} times in 20 s (${(inTwenty / 20).toFixed(1)}/s), ${logLines} connector log lines about it`).toBeLessThanOrEqual(10);
}, 60_000);

test("a helper process a stdio upstream started ends with the upstream when it crashes, not one more per restart", async () => {
  connector = await startConnector();
  expect((await register("crashy", { GRANDCHILD: "ignore" })).body.discovery?.status).toBe("ok");
  const vs = await stack.admin.post("/v1/virtual-servers", { name: "crashy", tools: [{ upstream: "crashy", tool: "echo" }, { upstream: "crashy", tool: "crash" }] });
  const names = Object.fromEntries(vs.body.tools.map((t: { tool: string; exposedName: string }) => [t.tool, t.exposedName]));
  await using agent = await connectHttp(stack.mcpUrl("crashy"));
  await sleep(500);
  const before = await live(`${tag}-crashy`);
  expect(before.length).toBe(2);
  const spawnedBefore = await spawns("crashy");
  await agent.callTool({ name: names.crash!, arguments: {} });
  const deadline = Date.now() + 15_000;
  let back = false;
  // Answered by a process started after the crash: the crashed one exits 10 ms after its answer,
  // and an echo quick enough was answered by it, before the restart had begun.
  while (Date.now() < deadline && !back) {
    back = (await spawns("crashy")) > spawnedBefore && (await agent.callTool({ name: names.echo!, arguments: { message: "back" } }).then((r) => JSON.stringify(r).includes("echo: back"), () => false));
    if (!back) await sleep(250);
  }
  expect(back, "the upstream was not restarted within 15 s of its crash").toBe(true);
  await sleep(500);
  const after = await live(`${tag}-crashy`);
  const leftOver = before.filter((pid) => after.includes(pid));
  // Before: the crashed process's helper was re-parented (no longer its descendant, so never found)
  // and lived on: 3 processes after one crash, one more per restart.
  expect({ running: after.length, leftOver }, `after the crash and ${await spawns("crashy")} spawns, ${after.length} of the upstream's processes run; of those before it, ${leftOver.join(", ") || "none"}`).toEqual({ running: 2, leftOver: [] });
}, 60_000);
