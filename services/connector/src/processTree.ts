import { readFileSync, readdirSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";

/** A process as /proc knows it: its pid, and when it started (so a reused pid is not taken for it). */
export interface ProcessRef {
  readonly pid: number;
  readonly started: string;
}

/** The most descendants looked for: a fork bomb's tree is not walked whole. */
const MAX_DESCENDANTS = 1_024;

/** Field 22 of /proc/<pid>/stat (after the command, which may hold spaces and parentheses). */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").split(" ")) if (child) children.push(Number(child));
    }
  } catch {
    // Gone, or no /proc (not Linux): nothing to find.
  }
  return children;
}

/**
 * The processes `pid` started, and theirs (Linux /proc; elsewhere none). A process that left its
 * parent's tree (re-parented, or started by one that already exited) is not found.
 */
export function descendantsOf(pid: number): ProcessRef[] {
  const found: ProcessRef[] = [];
  const queue = childrenOf(pid);
  while (queue.length > 0 && found.length < MAX_DESCENDANTS) {
    const next = queue.shift()!;
    const started = startTime(next);
    if (started === undefined) continue;
    found.push({ pid: next, started });
    queue.push(...childrenOf(next));
  }
  return found;
}

/** Kills the processes still running as they were found (a pid since reused by another process is left alone). */
export function killAll(processes: readonly ProcessRef[]): void {
  for (const { pid, started } of processes) {
    if (startTime(pid) !== started) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Gone meanwhile.
    }
  }
}

/** The environment variable a stdio upstream's process is started with: what it starts inherits it. */
export const TREE_MARK = "MANIFOLD_UPSTREAM_TREE";

/**
 * Live processes whose environment carries `TREE_MARK=<mark>` (Linux /proc; elsewhere none): what a
 * stdio upstream started, found after it exited too, when they are re-parented and no longer its
 * descendants. One that cleared its environment (or runs as another user) is not found.
 */
export async function markedProcesses(mark: string): Promise<ProcessRef[]> {
  const needle = `${TREE_MARK}=${mark}\0`;
  const found: ProcessRef[] = [];
  const entries = await readdir("/proc").catch(() => [] as string[]);
  for (const entry of entries) {
    if (found.length >= MAX_DESCENDANTS) break;
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, "latin1").catch(() => "");
    if (!environ.includes(needle)) continue;
    const started = startTime(Number(entry));
    if (started !== undefined) found.push({ pid: Number(entry), started });
  }
  return found;
}
