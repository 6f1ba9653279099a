export interface LoadResult {
  sessions: number;
  calls: number;
  errors: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

import { readFileSync } from "node:fs";

/** Hooks around the measured period, after the warm-up. */
export interface Window {
  begin(): void;
  end(): void;
}

export const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);
export const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/** The raw outcome of one measured period. */
export interface Sample {
  latencies: number[];
  errors: number;
  elapsedMs: number;
}

/**
 * Runs `call` in `sessions` concurrent loops: a warm-up whose samples are dropped, then a
 * measured period, with `window` around it.
 */
export async function sampleLoad(sessions: number, warmupMs: number, durationMs: number, call: (session: number) => Promise<unknown>, window?: Window): Promise<Sample> {
  const latencies: number[] = [];
  let errors = 0;
  let measuring = false;
  let stop = false;
  const loop = async (session: number) => {
    while (!stop) {
      const started = performance.now();
      try {
        await call(session);
        if (measuring) latencies.push(performance.now() - started);
      } catch {
        if (measuring) errors++;
      }
    }
  };
  const loops = Array.from({ length: sessions }, (_, i) => loop(i));
  await new Promise((r) => setTimeout(r, warmupMs));
  window?.begin();
  measuring = true;
  const began = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  window?.end();
  const elapsedMs = performance.now() - began;
  stop = true;
  await Promise.all(loops);
  return { latencies, errors, elapsedMs };
}

/** Latencies per call over every sample, throughput over their measured periods together. */
export function summarize(sessions: number, samples: Sample[]): LoadResult {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const elapsedMs = samples.reduce((sum, s) => sum + s.elapsedMs, 0);
  return {
    sessions,
    calls: latencies.length,
    errors: samples.reduce((sum, s) => sum + s.errors, 0),
    callsPerSec: round((latencies.length / elapsedMs) * 1000, 0),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
  };
}

export async function runLoad(sessions: number, warmupMs: number, durationMs: number, call: (session: number) => Promise<unknown>, window?: Window): Promise<LoadResult> {
  return summarize(sessions, [await sampleLoad(sessions, warmupMs, durationMs, call, window)]);
}

/** Linux reports process CPU time in clock ticks of 1/100 s (`getconf CLK_TCK`). */
const TICK_MS = 10;

/** CPU time (user + system, all threads) a process has used so far, in ms. */
function cpuMsOf(pid: number | "self"): number {
  if (pid === "self") {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  }
  // Fields after the parenthesised command name; utime and stime are the 14th and 15th of the line.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** Samples the CPU time of named processes over measured periods, summed over all of them. */
export function cpuWindow(pids: Record<string, number | "self">): Window & { usedMs(): Record<string, number> } {
  let before: Record<string, number> = {};
  const used: Record<string, number> = Object.fromEntries(Object.keys(pids).map((name) => [name, 0]));
  const sample = () => Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMsOf(pid)]));
  return {
    begin: () => void (before = sample()),
    end: () => {
      const after = sample();
      for (const name of Object.keys(pids)) used[name]! += after[name]! - before[name]!;
    },
    usedMs: () => used,
  };
}
