import type { ChildProcess } from "node:child_process";
import { subscribe } from "node:diagnostics_channel";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { inject } from "vitest";
import { descendants, killAll, processId } from "./processTable.js";

/**
 * Runs in every test worker (vitest `setupFiles`): no process a test starts outlives the worker.
 * A nats-server or an upstream fixture has no way to notice that its parent died, and vitest ends a
 * worker with SIGTERM, which a worker does not handle: before this, a suite that failed in
 * `beforeAll`, or whose hook or test timed out before its cleanup, left its servers running for good
 * (leftoverChildren.int: 6 processes of 5 suites, still running 30 s after the run).
 *
 * - on `exit`, on SIGTERM (then dying of it as before) and when its IPC channel closes (the vitest
 *   process itself killed: before this, its idle worker and the worker's children ran on), the
 *   worker SIGKILLs every process below it: a synchronous walk of /proc, so it also reaches what a
 *   spawned service spawned;
 * - every child spawned (node's `child_process` diagnostics channel sees each one, whoever spawns
 *   it) is written to the run's registry, so that a worker killed without running any handler
 *   (SIGKILL, OOM) still leaves their names for the run's teardown (leftoverChildren.ts).
 */
const INSTALLED = Symbol.for("manifold.childRegistry");
const worker = globalThis as { [INSTALLED]?: true };

if (!worker[INSTALLED]) {
  worker[INSTALLED] = true;
  const registry = join(inject("childRegistry"), `${process.pid}.jsonl`);
  subscribe("child_process", (message) => {
    const child = (message as { process: ChildProcess }).process;
    child.once("spawn", () => {
      const id = child.pid === undefined ? undefined : processId(child.pid);
      if (id) appendFileSync(registry, `${JSON.stringify(id)}\n`);
    });
  });
  const reap = () => killAll(descendants([process.pid]));
  process.on("exit", reap);
  const onTerm = () => {
    reap();
    // With its only listener gone, SIGTERM ends the worker as it did before this handler.
    process.off("SIGTERM", onTerm);
    process.kill(process.pid, "SIGTERM");
  };
  process.on("SIGTERM", onTerm);
  // The vitest process was cut short (a CI timeout, ^C, SIGKILL) and ran no teardown: its worker ends too.
  process.once("disconnect", onTerm);
}
