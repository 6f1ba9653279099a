import { freePort } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type { UpstreamSpec } from "./catalog.js";
import { EVERYTHING_BIN, everythingStdio } from "./upstreams.js";

/** The 2.x SDK fixture: a 2026-07-28 upstream over stdio or Streamable HTTP. */
export const MODERN_FIXTURE = new URL("../fixtures/modern-upstream.mjs", import.meta.url).pathname;

/**
 * One upstream per transport and era, by the name the resilience tests register it under:
 * `e…` is server-everything (2025 era), `m…` the 2.x SDK fixture (2026-07-28).
 */
const HTTP_COMMANDS = {
  esse: [EVERYTHING_BIN, "sse"],
  ehttp: [EVERYTHING_BIN, "streamableHttp"],
  mhttp: [MODERN_FIXTURE, "http"],
} as const;
const STDIO = { estdio: EVERYTHING_BIN, mstdio: MODERN_FIXTURE } as const;
export type HttpUpstream = keyof typeof HTTP_COMMANDS;
export type StdioUpstream = keyof typeof STDIO;

/** HTTP upstreams run by the test (each restartable on its own port); stdio ones are the connector's children. */
export interface EveryTransportUpstreams extends AsyncDisposable {
  readonly ports: Readonly<Record<string, number>>;
  /** The running process of an HTTP upstream (replaced by `restart`). */
  server(name: string): ChildProcess;
  /** The registrations of the named upstreams, ready for `registerUpstreams`. */
  specs(...names: string[]): UpstreamSpec[];
  /** SIGKILL an upstream: an HTTP one's process (awaiting its exit), a stdio one's processes the connector spawned. */
  kill(name: string): Promise<void>;
  /** Start an HTTP upstream again on its port. */
  restart(name: string): Promise<ChildProcess>;
  /** The pids of an upstream: a stdio one's connector children, or an HTTP one's process. */
  pids(name: string): number[];
  close(): Promise<void>;
}

/**
 * Starts the HTTP upstreams named (`esse`, `ehttp`, `mhttp`) plus `extra` ones (a name mapped to the
 * kind it runs, e.g. `{ healthy: "ehttp" }`), each on a free port.
 */
export async function startEveryTransportUpstreams(http: HttpUpstream[] = ["esse", "ehttp", "mhttp"], extra: Record<string, HttpUpstream> = {}): Promise<EveryTransportUpstreams> {
  const kinds: Record<string, HttpUpstream> = { ...Object.fromEntries(http.map((k) => [k, k])), ...extra };
  const ports: Record<string, number> = {};
  for (const name of Object.keys(kinds)) ports[name] = await freePort();
  const servers: Record<string, ChildProcess> = {};
  const start = async (name: string) => (servers[name] = await spawnServer([...HTTP_COMMANDS[kinds[name]!]], ports[name]!));
  await Promise.all(Object.keys(kinds).map(start));
  const known = (name: string) => {
    if (!(name in kinds) && !(name in STDIO)) throw new Error(`no upstream '${name}' here`);
    return name;
  };
  const spec = (name: string): UpstreamSpec => {
    if (name === "estdio") return { name, transport: everythingStdio() };
    if (name === "mstdio") return { name, transport: { type: "stdio", command: process.execPath, args: [MODERN_FIXTURE, "stdio"] } };
    const kind = kinds[known(name)]!;
    return { name, transport: kind === "esse" ? { type: "sse", url: `http://127.0.0.1:${ports[name]}/sse` } : { type: "streamable-http", url: `http://127.0.0.1:${ports[name]}/mcp` } };
  };
  const pids = (name: string) => (name in STDIO ? childrenWith(STDIO[name as StdioUpstream], "stdio") : [servers[known(name)]!.pid!]);
  const close = async () => {
    for (const child of Object.values(servers)) {
      child.kill("SIGCONT");
      await killed(child);
    }
  };
  return {
    ports,
    server: (name) => servers[known(name)]!,
    specs: (...names) => names.map(spec),
    kill: async (name) => {
      if (name in STDIO) for (const pid of pids(name)) process.kill(pid, "SIGKILL");
      else await killed(servers[known(name)]!);
    },
    restart: (name) => start(known(name)),
    pids,
    close,
    [Symbol.asyncDispose]: close,
  };
}

async function spawnServer(args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? "", PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      if (/listening|running/i.test(output)) resolve();
    });
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code}: ${output}`)));
  });
  return child;
}

async function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGKILL");
  await exited;
}

/** Live children of this process whose command line holds every one of `parts`. */
function childrenWith(...parts: string[]): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return ppid === process.pid && parts.every((p) => readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(p));
      } catch {
        return false;
      }
    })
    .map(Number);
}
