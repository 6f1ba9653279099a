import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { isRunning, killAll, type ProcessId } from "../helpers/processTable.js";

const VITEST = join(dirname(createRequire(import.meta.url).resolve("vitest/package.json")), "vitest.mjs");
const CONFIG = new URL("../fixtures/leftovers/vitest.config.ts", import.meta.url).pathname;
const SUITES = ["beforeAllThrows", "hookTimesOut", "testTimesOut", "processExit", "workerKilled"];

let started: ProcessId[] = [];
afterAll(() => killAll(started));

// Suites that start a nats-server (and server-everything) through the harness and then fail, hang
// past a timeout, exit their worker or have it killed: once the run is over, nothing they started runs.
test("no process a test started outlives its run, however the test ends", async () => {
  const dir = await mkdtemp(join(tmpdir(), "manifold-leftovers-"));
  const pids = join(dir, "pids.jsonl");
  const run = spawn(process.execPath, [VITEST, "run", "--config", CONFIG], {
    env: { ...process.env, LEFTOVER_PIDS: pids },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  for (const stream of [run.stdout, run.stderr]) stream.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const status = await new Promise<number | null>((resolve) => run.once("exit", resolve));

  const lines = (await readFile(pids, "utf8").catch(() => "")).split("\n").filter(Boolean);
  started = lines.flatMap((line) => JSON.parse(line) as ProcessId[]);
  await rm(dir, { recursive: true, force: true });
  expect(status, output).toBe(1);
  // Each suite got as far as starting its processes (nats-server; the first also server-everything).
  expect(lines, output).toHaveLength(SUITES.length);
  expect(started.length).toBeGreaterThanOrEqual(SUITES.length + 1);
  expect(started.filter(isRunning)).toEqual([]);
  // The killed worker ran no handler of its own: the run's teardown killed what it had registered.
  expect(output).toMatch(/killed [1-9]\d* processes that outlived their test worker/);
}, 60_000);
