import type { UpstreamTransportInput } from "@manifold/contracts";
import { freePort } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
/** Entry point of @modelcontextprotocol/server-everything, a real MCP server from the registry. */
export const EVERYTHING_BIN = require.resolve("@modelcontextprotocol/server-everything/dist/index.js");

/** A fixture of test/fixtures by file name, as stdio registrations give it. */
const fixture = (file: string) => new URL(`../fixtures/${file}`, import.meta.url).pathname;

/**
 * What the suite's registries and connectors allow stdio upstreams to run (MANIFOLD_STDIO_COMMANDS):
 * exactly the commands the tests register, each interpreter pinned to its script. A test that
 * registers another lists it itself.
 */
export const TEST_STDIO_COMMANDS = JSON.stringify([
  [process.execPath, EVERYTHING_BIN, "stdio"],
  [process.execPath, fixture("modern-upstream.mjs"), "stdio"],
  [process.execPath, fixture("malformedCallResults.mjs"), "stdio"],
  [process.execPath, fixture("outOfRangeNumbers.mjs"), "stdio"],
  [process.execPath, fixture("outOfRangeNumbersModern.mjs"), "stdio"],
  ...["stdio-upstream.mjs", "modern-tasks-upstream.mjs", "taggedStdio.mjs", "countingTasksStdio.mjs", "hostileStdio.mjs", "hostileStdioLifecycle.mjs", "strayResultTypes.mjs"].map((file) => [process.execPath, fixture(file)]),
]);

export const everythingStdio = (): UpstreamTransportInput => ({
  type: "stdio",
  command: process.execPath,
  args: [EVERYTHING_BIN, "stdio"],
  env: {},
});

export interface SpawnedUpstream extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts server-everything over Streamable HTTP (`/mcp`) or SSE (`/sse`) on a free port. */
export async function spawnEverything(mode: "streamableHttp" | "sse", port?: number): Promise<SpawnedUpstream> {
  const chosen = port ?? (await freePort());
  const child = spawn(process.execPath, [EVERYTHING_BIN, mode], {
    env: { PATH: process.env.PATH ?? "", PORT: String(chosen) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server-everything ${mode} did not start: ${output}`)), 15_000);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      if (/listening|running/i.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server-everything ${mode} exited with ${code}: ${output}`));
    });
  });
  const exited = new Promise((r) => child.once("exit", r));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    await exited;
  };
  const path = mode === "sse" ? "/sse" : "/mcp";
  return { url: `http://127.0.0.1:${chosen}${path}`, port: chosen, stop, [Symbol.asyncDispose]: stop };
}

/** The 2026-07-28 fixture as its own process on a fixed port, so a test can kill it and start it again on the same address. */
export async function spawnModernUpstream(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [fixture("modern-upstream.mjs"), "http"], { env: { PATH: process.env.PATH ?? "", PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => chunk.includes("listening") && resolve());
    child.once("exit", (code) => reject(new Error(`modern fixture exited with ${code}`)));
  });
  return child;
}
