import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";
import { TEST_STDIO_COMMANDS } from "../helpers/upstreams.js";

// A stdio upstream's stderr is its log, and the upstream is not trusted with the connector's
// memory or log. Before, the connector read it with readline and logged every line whole: a
// 600 MiB line without a newline ended the connector (RangeError: Invalid string length, uncaught)
// and every upstream it served; a 200 MiB line grew it by 1.2 GiB, was one log record, and failed
// another tenant's call to another upstream. The connector runs as its own process here, so its
// memory and its log are its own.

const HOSTILE = new URL("../fixtures/hostileStdio.mjs", import.meta.url).pathname;
const CALM = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;

let nats: NatsServer;
let stack: Stack;
let connector: ServiceProcess;
let dir: string;
let names: Record<string, string>;
let logFile: string;

const rssMiB = async (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
/** The connector's peak resident memory over `work`, sampled every 50 ms. */
async function peakDuring<T>(work: () => Promise<T>): Promise<{ result: T; grewMiB: number }> {
  const pid = connector.child.pid!;
  const before = await rssMiB(pid);
  let peak = before;
  const sampler = setInterval(() => void rssMiB(pid).then((r) => (peak = Math.max(peak, r)), () => undefined), 50);
  try {
    return { result: await work(), grewMiB: peak - before };
  } finally {
    clearInterval(sampler);
  }
}

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "manifold-stderr-"));
  logFile = join(dir, "connector.log");
  stack = await startStack(nats.url, {}, { connector: false });
  const port = await freePort();
  connector = spawnService("connector", serviceEntry("connector"), [], { ...busEnv(nats, "connector"), CONNECTOR_PORT: String(port), LOG_LEVEL: "info", MANIFOLD_STDIO_COMMANDS: TEST_STDIO_COMMANDS }, logFile);
  await connector.ready(`http://127.0.0.1:${port}/readyz`);
  await registerUpstreams(
    stack,
    { name: "hostile", transport: { type: "stdio", command: process.execPath, args: [HOSTILE], protocol: "2025" }, options: { callTimeoutMs: 120_000 } },
    { name: "calm", transport: { type: "stdio", command: process.execPath, args: [CALM], protocol: "2025" } },
  );
  names = await createVirtualServer(stack, "stderr", [
    { upstream: "hostile", tool: "stderr-line" },
    { upstream: "hostile", tool: "stderr-flood" },
    { upstream: "calm", tool: "echo" },
  ]);
});

afterAll(async () => {
  await connector?.stop();
  await stack?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("attack: a stderr line without end neither grows the connector nor stops it; another upstream still answers", async () => {
  await using agent = await connectHttp(stack.mcpUrl("stderr"));
  const { result, grewMiB } = await peakDuring(() =>
    agent.callTool({ name: names["hostile/stderr-line"]!, arguments: { mib: 200, newline: false } }, undefined, { timeout: 120_000 }),
  );
  expect(JSON.stringify(result)).toContain("written");
  expect(connector.child.exitCode).toBeNull();
  // Before: the line was held whole (+1.2 GiB for 200 MiB with its log record; at 600 MiB the process died).
  expect(grewMiB).toBeLessThan(100);
  expect(JSON.stringify(await agent.callTool({ name: names["calm/echo"]!, arguments: { message: "still here" } }))).toContain("still here");
}, 180_000);

test("attack: a 64 MiB stderr line is one record of at most 8 KiB, and another tenant's calls go on meanwhile", async () => {
  await using agent = await connectHttp(stack.mcpUrl("stderr"));
  await using other = await connectHttp(stack.mcpUrl("stderr"));
  const logBefore = (await stat(logFile)).size;
  const attack = agent.callTool({ name: names["hostile/stderr-line"]!, arguments: { mib: 64, newline: true, char: "q" } }, undefined, { timeout: 120_000 });
  let done = false;
  void attack.finally(() => (done = true));
  const latencies: number[] = [];
  while (!done || latencies.length < 5) {
    const started = Date.now();
    expect(JSON.stringify(await other.callTool({ name: names["calm/echo"]!, arguments: { message: "x" } }))).toContain("x");
    latencies.push(Date.now() - started);
  }
  await attack;
  expect(Math.max(...latencies)).toBeLessThan(1_000);
  await new Promise((r) => setTimeout(r, 500));
  const log = (await readFile(logFile, "utf8")).slice(logBefore);
  // (The line may go on one the first test left without an end: what is cut is counted either way.)
  const record = log.split("\n").find((line) => line.includes('"stream":"stderr"') && line.includes("truncatedChars"));
  expect(record).toBeDefined();
  expect(record!.length).toBeLessThan(9 * 1024);
  expect((JSON.parse(record!) as { truncatedChars: number }).truncatedChars).toBeGreaterThanOrEqual(64 * 1024 * 1024 - 8 * 1024);
  expect(log.length).toBeLessThan(64 * 1024);
}, 180_000);

test("attack: a flood of stderr lines is logged at most 100 a second, the rest counted", async () => {
  await using agent = await connectHttp(stack.mcpUrl("stderr"));
  const logBefore = (await stat(logFile)).size;
  const started = Date.now();
  await agent.callTool({ name: names["hostile/stderr-flood"]!, arguments: { lines: 200_000, size: 100 } }, undefined, { timeout: 120_000 });
  await new Promise((r) => setTimeout(r, 1_100));
  // One more line after the window closes reports what the last window dropped.
  await agent.callTool({ name: names["hostile/stderr-flood"]!, arguments: { lines: 1, size: 10 } });
  const seconds = (Date.now() - started) / 1000;
  const lines = (await readFile(logFile, "utf8")).slice(logBefore).split("\n").filter((line) => line.includes('"stream":"stderr"'));
  const logged = lines.filter((line) => line.includes("yyyy")).length;
  const dropped = lines.filter((line) => line.includes("stderr lines dropped")).reduce((sum, line) => sum + (JSON.parse(line) as { dropped: number }).dropped, 0);
  expect(logged).toBeLessThanOrEqual(100 * Math.ceil(seconds + 1));
  expect(dropped).toBeGreaterThan(150_000);
}, 180_000);
