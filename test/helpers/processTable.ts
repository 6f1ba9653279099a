import { readdirSync, readFileSync } from "node:fs";

/**
 * The kernel's process table (/proc), read synchronously so that an `exit` handler can use it.
 * A process is named by its pid and its start time (clock ticks after boot): a pid can be reused
 * once its process is gone, the pair cannot.
 */
export interface ProcessId {
  readonly pid: number;
  readonly start: number;
}

interface Row extends ProcessId {
  readonly ppid: number;
}

/** `/proc/<pid>/stat`: the command may hold spaces and parentheses, so fields are counted after its last `)`. */
function row(pid: number): Row | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): ppid is field 4, starttime field 22; a zombie has already exited.
    if (fields[0] === "Z") return undefined;
    return { pid, ppid: Number(fields[1]), start: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

/** Every pid in the table; none where there is no /proc (not Linux), where the harness then does nothing. */
function pids(): number[] {
  try {
    return readdirSync("/proc").filter((name) => /^\d+$/.test(name)).map(Number);
  } catch {
    return [];
  }
}

/** The process `pid` as it runs now, or undefined once it has exited. */
export function processId(pid: number): ProcessId | undefined {
  const found = row(pid);
  return found && { pid: found.pid, start: found.start };
}

/** Whether that very process (not a later one given its pid) is still running. */
export function isRunning(id: ProcessId): boolean {
  return processId(id.pid)?.start === id.start;
}

/** Every running process below `roots` (children, their children, …), not the roots themselves. */
export function descendants(roots: readonly number[]): ProcessId[] {
  const rows = pids().map(row).filter((r) => r !== undefined);
  const found: ProcessId[] = [];
  const parents = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const r of rows) {
      if (parents.has(r.ppid) && !parents.has(r.pid)) {
        parents.add(r.pid);
        found.push({ pid: r.pid, start: r.start });
        grew = true;
      }
    }
  }
  return found;
}

/** SIGKILL each process that is still the one named (never a stranger that took a freed pid). */
export function killAll(ids: readonly ProcessId[]): ProcessId[] {
  const killed = ids.filter(isRunning);
  for (const id of killed) {
    try {
      process.kill(id.pid, "SIGKILL");
    } catch {
      // It exited between the check and the signal.
    }
  }
  return killed;
}
