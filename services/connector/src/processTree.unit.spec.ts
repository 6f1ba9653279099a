import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { expect, test } from "vitest";
import { descendantsOf, killAll, markedProcesses, TREE_MARK } from "./processTree.js";

/** Running, not a zombie waiting for a reaper (a container's init may never reap). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

test("a process's descendants are found before it ends and killed after, and a pid's new owner is left alone", async () => {
  // A shell that starts a helper ignoring SIGTERM, then waits.
  const parent = spawn("sh", ["-c", "trap '' TERM; sleep 30 & sleep 30 & wait"], { stdio: "ignore" });
  await sleep(300);
  const found = descendantsOf(parent.pid!);
  expect(found.length).toBeGreaterThanOrEqual(2);
  parent.kill("SIGKILL");
  await sleep(100);
  // Re-parented to init once their shell is gone, and still running.
  expect(found.every((p) => alive(p.pid))).toBe(true);
  // A reference whose start time no longer matches (a reused pid) is not killed.
  killAll([{ pid: process.pid, started: "not-this-process" }]);
  expect(alive(process.pid)).toBe(true);
  killAll(found);
  await sleep(100);
  expect(found.filter((p) => alive(p.pid))).toEqual([]);
  expect(descendantsOf(2 ** 22 + 1)).toEqual([]);
});

test("what a process started is found by its mark after the process is gone and they were re-parented", async () => {
  const mark = `unit-${process.pid}-${Date.now()}`;
  const parent = spawn("sh", ["-c", "trap '' TERM; sleep 30 & sleep 30 & wait"], { stdio: "ignore", env: { ...process.env, [TREE_MARK]: mark } });
  await sleep(300);
  parent.kill("SIGKILL");
  await sleep(100);
  // No longer its descendants: found by the mark alone (the two sleeps; the shell, killed, is gone or a zombie).
  expect(descendantsOf(parent.pid!)).toEqual([]);
  const found = (await markedProcesses(mark)).filter((p) => alive(p.pid));
  expect(found.length).toBe(2);
  expect(found.map((p) => p.pid)).not.toContain(process.pid);
  killAll(found);
  await sleep(100);
  expect(found.filter((p) => alive(p.pid))).toEqual([]);
  expect(await markedProcesses(`${mark}-other`)).toEqual([]);
});
