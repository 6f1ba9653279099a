import type { ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";

/**
 * SIGSTOP a child and resolve once every one of its threads is stopped. kill() returns as soon
 * as the signal is queued; the kernel then stops a multi-threaded process (nats-server, Node)
 * thread by thread, and on a loaded machine a nats-server went on routing a whole call for
 * tens of milliseconds after kill() had returned (busFrozen.e2e, seen once in CI).
 */
export async function freeze(child: ChildProcess, timeoutMs = 5_000): Promise<void> {
  if (child.pid === undefined || !child.kill("SIGSTOP")) throw new Error("freeze: the process is not running");
  const deadline = Date.now() + timeoutMs;
  while (!(await allStopped(child.pid))) {
    if (Date.now() > deadline) throw new Error(`freeze: process ${child.pid} not stopped after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

async function allStopped(pid: number): Promise<boolean> {
  const threads = await readdir(`/proc/${pid}/task`);
  for (const tid of threads) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8").catch(() => "");
    // The state follows the command name, which is in parentheses and may hold spaces.
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    if (stat && state !== "T" && state !== "t") return false;
  }
  return true;
}
