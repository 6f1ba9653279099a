export interface LoadResult {
  sessions: number;
  calls: number;
  errors: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

export const percentile = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN);
export const round = (n: number, digits = 3) => Number(n.toFixed(digits));

/**
 * Runs `call` in `sessions` concurrent loops: a warm-up whose samples are dropped, then a
 * measured period. Latencies are per call, throughput over the measured period.
 */
export async function runLoad(sessions: number, warmupMs: number, durationMs: number, call: (session: number) => Promise<unknown>): Promise<LoadResult> {
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
  measuring = true;
  const began = performance.now();
  await new Promise((r) => setTimeout(r, durationMs));
  measuring = false;
  const elapsed = performance.now() - began;
  stop = true;
  await Promise.all(loops);
  latencies.sort((a, b) => a - b);
  return {
    sessions,
    calls: latencies.length,
    errors,
    callsPerSec: round((latencies.length / elapsed) * 1000, 0),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
  };
}
