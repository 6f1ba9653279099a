import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { isRunning, killAll, type ProcessId } from "../helpers/processTable.js";

const VITEST = join(dirname(createRequire(import.meta.url).resolve("vitest/package.json")), "vitest.mjs");
const CONFIG = new URL("../fixtures/leftovers/vitest.config.ts", import.meta.url).pathname;
/** Suites of test/fixtures/leftovers that each start a nats-server through the harness, then end badly. */
const ENDINGS = ["beforeAllThrows", "hookTimesOut", "testTimesOut", "processExit", "workerKilled"];

const dirs: string[] = [];
const started: ProcessId[] = [];
afterAll(async () => {
  killAll(started);
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A vitest of its own over the suites matching `filters`; each suite appends a line of its processes (worker first) to `pids`. */
async function runSuites(filters: string[]): Promise<{ run: ChildProcess; pids: string; output: () => string; status: Promise<number | null> }> {
  const dir = await mkdtemp(join(tmpdir(), "manifold-leftovers-"));
  dirs.push(dir);
  const pids = join(dir, "pids.jsonl");
  const run = spawn(process.execPath, [VITEST, "run", "--config", CONFIG, ...filters], { env: { ...process.env, LEFTOVER_PIDS: pids }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  for (const stream of [run.stdout!, run.stderr!]) stream.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const status = new Promise<number | null>((resolve) => run.once("exit", resolve));
  return { run, pids, output: () => output, status };
}

async function startedBy(pids: string): Promise<ProcessId[][]> {
  const lines = (await readFile(pids, "utf8").catch(() => "")).split("\n").filter(Boolean);
  const found = lines.map((line) => JSON.parse(line) as ProcessId[]);
  started.push(...found.flat());
  return found;
}

async function until(done: () => Promise<boolean> | boolean, ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; !(await done()) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
}

// Before the harness, every one of these left its processes running for good (6 of 6, 30 s after the run).
test.concurrent("no process a test started outlives its run: a failed beforeAll, a hook or test timeout, process.exit, a killed worker", async () => {
  const { pids, output, status } = await runSuites(ENDINGS);
  expect(await status, output()).toBe(1);
  const suites = await startedBy(pids);
  // Each suite got as far as starting its worker's children (nats-server; the first also server-everything).
  expect(suites, output()).toHaveLength(ENDINGS.length);
  for (const processes of suites) expect(processes.length).toBeGreaterThanOrEqual(2);
  expect(suites.flat().filter(isRunning)).toEqual([]);
  // The killed worker ran no handler of its own: the run's teardown killed what it had registered.
  expect(output()).toMatch(/killed [1-9]\d* processes that outlived their test worker/);
}, 60_000);

// The vitest process itself SIGKILLed mid-test: no teardown runs; its worker notices and takes its children with it.
test.concurrent("no process outlives a run that is killed mid-test, its worker included", async () => {
  const { run, pids, output, status } = await runSuites(["runCutShort"]);
  await until(async () => (await readFile(pids, "utf8").catch(() => "")).includes("\n"), 30_000);
  // Once its worker has sent its last report (a worker that sends one after the kill dies of EPIPE anyway).
  await new Promise((r) => setTimeout(r, 1_000));
  run.kill("SIGKILL");
  await status;
  const [processes = []] = await startedBy(pids);
  expect(processes.length, output()).toBeGreaterThanOrEqual(2);
  await until(() => !processes.some(isRunning), 5_000);
  expect(processes.filter(isRunning)).toEqual([]);
}, 60_000);
