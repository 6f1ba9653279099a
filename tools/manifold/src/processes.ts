import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
// Not Node 20's bundled fetch, which never settled a request whose connection was reset (adminClient.ts).
import { fetch } from "undici";

export type ServiceName = "registry" | "connector" | "gateway";

/** The `main.js` of a service package, found through the package's public entry. */
export function serviceEntry(name: ServiceName): string {
  const index = new URL(import.meta.resolve(`@manifold/${name}`));
  return new URL("main.js", index).pathname;
}

/**
 * How V8 runs the services on the call path (gateway and connector; their start scripts, the image
 * and the manifests run them so too): without allocation-site pretenuring. Under load V8 came to
 * allocate some of a call's short-lived objects in the old generation, and from there, dead, they
 * kept the rest of the call through every young collection: ~3 KB a call promoted in the connector,
 * a full collection every few seconds, 23-31 µs of GC a call against 6-12 with the flag (and the
 * heartbeat list; docs/performance.md, "Young objects kept by old garbage").
 */
export const CALL_PATH_NODE_FLAGS: readonly string[] = ["--no-allocation-site-pretenuring"];
const onCallPath = (entry: string) => entry === serviceEntry("gateway") || entry === serviceEntry("connector");

export interface ServiceProcess extends AsyncDisposable {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with how the process ended: `exit code 1`, `signal SIGKILL`. */
  readonly exited: Promise<string>;
  /** Polls `url` until it answers 200; gives up when the process exits or `signal` aborts. */
  ready(url: string, timeoutMs?: number, signal?: AbortSignal): Promise<void>;
  /** SIGTERM (graceful), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Runs a Node entry point as its own process with exactly the given environment added,
 * its output appended to `logFile` (or discarded). `launcher` runs Node under another program
 * (the bench's instruction counts run it under valgrind).
 */
export function spawnService(
  name: string,
  entry: string,
  args: string[],
  env: Record<string, string>,
  logFile?: string,
  nodeArgs: string[] = [],
  launcher: readonly string[] = [],
): ServiceProcess {
  const flags = onCallPath(entry) ? CALL_PATH_NODE_FLAGS : [];
  const [command = process.execPath, ...prefix] = launcher.length ? [...launcher, process.execPath] : [];
  const child = spawn(command, [...prefix, "--enable-source-maps", ...flags, ...nodeArgs, entry, ...args], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", logFile ? "pipe" : "ignore", logFile ? "pipe" : "ignore"],
  });
  if (logFile) {
    const log = createWriteStream(logFile, { flags: "a", mode: 0o600 });
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  }
  const exited = new Promise<string>((resolve) => child.once("exit", (code, signal) => resolve(signal ? `signal ${signal}` : `exit code ${code}`)));
  const running = () => child.exitCode === null && child.signalCode === null;

  const stop = async (graceMs = 5_000) => {
    if (!running()) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };

  return {
    name,
    child,
    exited,
    async ready(url, timeoutMs = 30_000, signal) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        signal?.throwIfAborted();
        if (!running()) throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode}${logFile ? `; see ${logFile}` : ""}`);
        const ok = await fetch(url).then(
          (r) => r.ok,
          (error: unknown) => {
            // fetch never dials some ports (WHATWG "bad port"): waiting would not change that.
            if ((error as { cause?: { message?: unknown } }).cause?.message === "bad port") throw new Error(`${name} listens on ${new URL(url).port}, a port fetch refuses to dial ("bad port"); choose another`);
            return false;
          },
        );
        if (ok) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${name} was not ready at ${url} within ${timeoutMs} ms`);
    },
    stop,
    [Symbol.asyncDispose]: () => stop(),
  };
}
