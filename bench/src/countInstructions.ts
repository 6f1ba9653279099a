// `pnpm --filter @manifold/bench count-instructions [--process=connector|gateway|back|front] [--lane=2026-07-28|2025]
//   [--floor=bare|duties] [--clients=64] [--calls=3000] [--warmup=8000] [--out=DIR] [--perf] [--cache]`
// Main-thread instructions per tools/call of one process, counted by callgrind: wall clock on a
// shared machine swings by 10 % and more, instruction counts by about 2 % (docs/performance.md,
// "Instructions per call, counted"). Needs valgrind; not part of CI. With --perf the process writes
// /tmp/perf-<pid>.map and the dump is written again with JIT code named, for callgrind_annotate.
// `back` and `front` count one hop of the bench's floor (floor.ts) instead of Manifold: the bare
// hops, or with --floor=duties the duties floor; the yardstick a connector or gateway is read against.
// --cache has callgrind simulate the caches too (about twice as slow) and adds the main thread's
// first-level and last-level misses a call: CPU time can differ where instruction counts do not.
import { startNatsServer } from "@manifold/nats-server";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { closeSessions, openSessions, useGatewayKey, type Era } from "./callScenarios.js";
import { benchCatalog, startFastUpstream, startFloor, startServices } from "./processes.js";

const flag = (name: string, fallback: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const measured = flag("process", "connector");
const lane = flag("lane", "2026-07-28") as Era;
const clients = Number(flag("clients", "64"));
const calls = Number(flag("calls", "3000"));
const warmup = Number(flag("warmup", "8000"));
const perf = process.argv.includes("--perf");
const cache = process.argv.includes("--cache");
const floorKind = flag("floor", "bare");
if (!["connector", "gateway", "back", "front"].includes(measured)) throw new Error(`--process is connector, gateway, back or front, not ${measured}`);
if (floorKind !== "bare" && floorKind !== "duties") throw new Error(`--floor is bare or duties, not ${floorKind}`);
const onFloor = measured === "back" || measured === "front";
if (lane !== "2025" && lane !== "2026-07-28") throw new Error(`--lane is 2025 or 2026-07-28, not ${lane}`);
const out = process.argv.some((a) => a.startsWith("--out=")) ? flag("out", "") : await mkdtemp(join(tmpdir(), "manifold-callgrind-"));
await mkdir(out, { recursive: true });
const IDLE_MS = 6_000;
const log = (line: string) => process.stderr.write(`count-instructions: ${line}\n`);
const run = promisify(execFile);

const STRETCH = ["--import", new URL("./stretchLiveness.js", import.meta.url).pathname];
const valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes", "--smc-check=all-non-file", `--callgrind-out-file=${out}/callgrind.out.%p`, ...(cache ? ["--cache-sim=yes"] : [])];
const launchMeasured = { launcher: valgrind, nodeArgs: [...STRETCH, ...(perf ? ["--perf-basic-prof"] : [])], readyTimeoutMs: 300_000, logFile: join(out, `${measured}.log`) };

// Everything started here, stopped in reverse order at the end, on a failure, or on SIGINT/SIGTERM.
const stops: (() => Promise<unknown>)[] = [];
const stopAll = async () => {
  for (const stop of stops.splice(0).reverse()) await stop().catch(() => undefined);
};
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => void stopAll().finally(() => process.exit(1)));
// The measured process reads ~50x slower: nats-server would drop it as a slow consumer.
const nats = await startNatsServer({ extraConfig: ['write_deadline: "120s"'] });
stops.push(() => nats.stop());
const fast = await startFastUpstream();
stops.push(() => fast.process.stop());
const failed = async (error: unknown): Promise<never> => {
  await stopAll();
  throw error;
};
/** Where the load goes, which tool it calls, and the measured process: Manifold's services or the floor's hops. */
async function target(): Promise<{ url: string; tool: string; pid: number | undefined }> {
  if (onFloor) {
    const floor = await startFloor(nats, fast.url, floorKind === "duties", undefined, { [measured]: launchMeasured }).catch(failed);
    stops.push(() => Promise.all(floor.all.map((s) => s.stop(30_000))));
    return { url: floor.url, tool: "echo", pid: floor.all[measured === "front" ? 0 : 1]!.child.pid };
  }
  const services = await startServices(nats, { connector: { CONNECTOR_UPSTREAMS: "fast" } }, undefined, {
    connector: measured === "connector" ? launchMeasured : { nodeArgs: STRETCH },
    gateway: measured === "gateway" ? launchMeasured : { nodeArgs: STRETCH },
  }).catch(failed);
  stops.push(() => Promise.all(services.all.map((s) => s.stop(30_000))));
  const { exposed, gatewayKey } = await benchCatalog(services.registryUrl, fast.url).catch(failed);
  useGatewayKey(gatewayKey);
  return { url: `${services.gatewayUrl}/mcp/bench`, tool: exposed, pid: services[measured as "connector" | "gateway"].child.pid };
}
const measuredTarget = await target();
const pid = String(measuredTarget.pid);
const control = (...args: string[]) => run("callgrind_control", [...args, pid]);

/**
 * Main thread's and other threads' instructions in dump `n` (callgrind numbers dumps from 1), and
 * the main thread's every event by callgrind's name (`Ir`; with --cache `D1mr`, `DLmr` and the rest).
 */
async function dumped(n: number): Promise<{ main: number; others: number; events: Record<string, number> }> {
  const files = (await readdir(out)).filter((f) => f.startsWith(`callgrind.out.${pid}.${n}-`));
  let [main, others] = [0, 0];
  let events: Record<string, number> = {};
  for (const file of files) {
    const text = await readFile(join(out, file), "utf8");
    const counts = (/^(?:summary|totals): ([\d ]+)/m.exec(text)?.[1] ?? "").trim().split(" ").map(Number);
    if (file.endsWith("-01")) {
      main += counts[0] ?? NaN;
      const names = (/^events: (.*)$/m.exec(text)?.[1] ?? "Ir").trim().split(" ");
      events = Object.fromEntries(names.map((name, i) => [name, counts[i] ?? NaN]));
    } else others += counts[0] ?? NaN;
  }
  if (!files.some((f) => f.endsWith("-01"))) throw new Error(`no main thread's dump ${n} in ${out}`);
  return { main, others, events };
}

/** JIT code named from /tmp/perf-<pid>.map, written beside the dump as `<file>.named`. */
async function nameJitCode(file: string): Promise<void> {
  const symbols = (await readFile(`/tmp/perf-${pid}.map`, "utf8"))
    .split("\n")
    .map((l) => /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ start: parseInt(m[1]!, 16), end: parseInt(m[1]!, 16) + parseInt(m[2]!, 16), name: m[3]!.replaceAll(" ", "_") }))
    .sort((a, b) => a.start - b.start);
  const lookup = (address: number) => {
    let [lo, hi] = [0, symbols.length - 1];
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = symbols[mid]!;
      if (address < s.start) hi = mid - 1;
      else if (address >= s.end) lo = mid + 1;
      else return s.name;
    }
    return undefined;
  };
  const text = await readFile(join(out, file), "utf8");
  await writeFile(join(out, `${file}.named`), text.replace(/\b0x([0-9a-f]{8,16})\b/g, (hex, digits: string) => lookup(parseInt(digits, 16)) ?? hex));
}

const load = async (total: number, call: (client: number) => Promise<unknown>) => {
  let left = total;
  let errors = 0;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    while (left-- > 0) await call(i).catch(() => errors++);
  }));
  return errors;
};

try {
  const opened = await openSessions(measuredTarget.url, clients, lane);
  const params = { name: measuredTarget.tool, arguments: { message: "hello, manifold" } };
  const call = (i: number) => opened.sessions[i]!.request("tools/call", params);
  log(`${measured} (pid ${pid}) under callgrind, ${lane} at ${clients} client(s): ${warmup} calls of warm-up`);
  const warmupErrors = await load(warmup, call);
  await control("-i", "on");
  await control("-z");
  const started = performance.now();
  const errors = await load(calls, call);
  const runMs = performance.now() - started;
  await control("-d");
  await control("-z");
  await new Promise((r) => setTimeout(r, IDLE_MS));
  await control("-d");
  await closeSessions(opened);
  const [busy, idle] = [await dumped(1), await dumped(2)];
  const idlePerMs = idle.main / IDLE_MS;
  const k = (n: number) => Math.round(n / 100) / 10;
  const result = {
    process: onFloor ? `${floorKind} ${measured}` : measured,
    lane,
    clients,
    calls,
    errors: { warmup: warmupErrors, measured: errors },
    runMs: Math.round(runMs),
    mainPerCallK: k((busy.main - idlePerMs * runMs) / calls),
    rawMainPerCallK: k(busy.main / calls),
    idlePerMsK: k(idlePerMs),
    otherThreadsPerCallK: k(busy.others / calls),
    // Misses a call, first level (instruction, data read, data write) and last level; raw, not net of idle.
    ...(cache ? { missesPerCall: Object.fromEntries(Object.entries(busy.events).filter(([name]) => name !== "Ir").map(([name, count]) => [name, Math.round(count / calls)])) } : {}),
    dumps: out,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (perf) {
    for (const file of (await readdir(out)).filter((f) => f.startsWith(`callgrind.out.${pid}.1-01`))) await nameJitCode(file);
    log(`callgrind_annotate --inclusive=yes ${out}/callgrind.out.${pid}.1-01.named`);
  }
} finally {
  await stopAll();
}
