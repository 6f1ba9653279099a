import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { descendants, isRunning, killAll, type ProcessId } from "./processTable.js";

declare module "vitest" {
  interface ProvidedContext {
    /** The folder where each worker lists the processes it spawned (childRegistry.ts). */
    childRegistry: string;
  }
}

/**
 * vitest `globalSetup`: the run's registry of spawned processes, and at the end of the run the
 * SIGKILL of any still running, with what they spawned. Only a worker that died without running
 * its handlers leaves some; each is named by pid and start time, so no other process is touched.
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), "manifold-children-"));
  project.provide("childRegistry", dir);
  return () => {
    const registered = readdirSync(dir).flatMap((file) =>
      readFileSync(join(dir, file), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as ProcessId),
    );
    const left = registered.filter(isRunning);
    const killed = killAll([...left, ...descendants(left.map((id) => id.pid))]);
    if (killed.length > 0) console.warn(`killed ${killed.length} processes that outlived their test worker (pids ${killed.map((id) => id.pid).join(", ")})`);
    rmSync(dir, { recursive: true, force: true });
  };
}
