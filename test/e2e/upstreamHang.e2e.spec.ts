import type { NatsServer } from "@manifold/nats-server";
import { freePort } from "@manifold/nats-server";
import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { freeze } from "../helpers/freeze.js";
import { connectHttp, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { EVERYTHING_BIN, everythingStdio } from "../helpers/upstreams.js";

const MODERN_FIXTURE = new URL("../fixtures/modern-upstream.mjs", import.meta.url).pathname;
const CALL_TIMEOUT_MS = 2_000;

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
/** Live children of this process whose command line holds every one of `parts`. */
const childrenWith = (...parts: string[]) =>
  readdirSync("/proc")
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

const timed = async <T>(work: Promise<T>) => {
  const started = Date.now();
  const outcome = await work.then(
    () => "ok",
    (e: { data?: { code?: string }; message?: string }) => `${e.data?.code} ${e.message}`,
  );
  return { ms: Date.now() - started, outcome };
};

/**
 * An upstream that keeps its connections open but answers nothing (its process stopped: SIGSTOP,
 * a stalled host), in each transport and era: its calls end at the call budget with
 * `upstream_timeout`, so does a discovery, while another caller's calls to another upstream and
 * the agent's tool list are served as usual; once it runs again its next call is answered at once.
 */
describe("an upstream that hangs", () => {
  let nats: NatsServer;
  let stack: Stack;
  let agent: DisposableClient;
  let other: DisposableClient;
  let names: Record<string, string>;
  const servers: Record<string, ChildProcess> = {};

  beforeAll(async () => {
    nats = await startNats();
    const ports = { esse: await freePort(), ehttp: await freePort(), mhttp: await freePort(), healthy: await freePort() };
    [stack, servers.esse, servers.ehttp, servers.mhttp, servers.healthy] = await Promise.all([
      startStack(nats.url, { HEALTH_HEARTBEAT_MS: "200", CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS) }),
      spawnServer([EVERYTHING_BIN, "sse"], ports.esse),
      spawnServer([EVERYTHING_BIN, "streamableHttp"], ports.ehttp),
      spawnServer([MODERN_FIXTURE, "http"], ports.mhttp),
      spawnServer([EVERYTHING_BIN, "streamableHttp"], ports.healthy),
    ]);
    await registerUpstreams(
      stack,
      { name: "estdio", transport: everythingStdio() },
      { name: "esse", transport: { type: "sse", url: `http://127.0.0.1:${ports.esse}/sse` } },
      { name: "ehttp", transport: { type: "streamable-http", url: `http://127.0.0.1:${ports.ehttp}/mcp` } },
      { name: "mhttp", transport: { type: "streamable-http", url: `http://127.0.0.1:${ports.mhttp}/mcp` } },
      { name: "healthy", transport: { type: "streamable-http", url: `http://127.0.0.1:${ports.healthy}/mcp` } },
    );
    names = await createVirtualServer(stack, "hang", ["estdio", "esse", "ehttp", "mhttp", "healthy"].map((upstream) => ({ upstream, tool: "echo" })));
    [agent, other] = await Promise.all([connectHttp(stack.mcpUrl("hang")), connectHttp(stack.mcpUrl("hang"))]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([agent?.close(), other?.close()]);
    await stack?.close();
    for (const child of Object.values(servers)) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    await nats?.stop();
  });

  const echo = (client: DisposableClient, upstream: string) => client.callTool({ name: names[`${upstream}/echo`]!, arguments: { message: "x" } }, undefined, { timeout: 60_000 });

  test.each([
    ["stdio, 2025", "estdio"],
    ["legacy HTTP+SSE", "esse"],
    ["Streamable HTTP, 2025", "ehttp"],
    ["Streamable HTTP, 2026-07-28", "mhttp"],
  ])("%s: calls and discovery end at the budget with upstream_timeout, no one else waits, and it serves at once when it runs again", async (_, u) => {
    const pids = u === "estdio" ? childrenWith(EVERYTHING_BIN, "stdio") : [servers[u]!.pid!];
    expect(pids.length).toBeGreaterThan(0);
    if (u === "estdio") for (const pid of pids) process.kill(pid, "SIGSTOP");
    else await freeze(servers[u]!);
    try {
      const hung = [timed(echo(agent, u)), timed(echo(agent, u))];
      const discovery = timed(stack.admin.post(`/v1/upstreams/${u}/discover`, {}).then((r) => (r.body.discovery?.status === "ok" ? r : Promise.reject(Object.assign(new Error(r.body.discovery?.error?.message), { data: r.body.discovery?.error })))));
      await new Promise((r) => setTimeout(r, 200));
      // Meanwhile: another caller, another upstream, and the virtual server's tool list.
      const elsewhere = await Promise.all([timed(echo(other, "healthy")), timed(echo(agent, "healthy")), timed(other.listTools())]);
      for (const { ms, outcome } of elsewhere) {
        expect(outcome).toBe("ok");
        expect(ms).toBeLessThan(1_500);
      }
      for (const { ms, outcome } of [...(await Promise.all(hung)), await discovery]) {
        expect(outcome).toMatch(new RegExp(`^upstream_timeout .*upstream '${u}' did not answer within ${CALL_TIMEOUT_MS} ms`));
        expect(ms).toBeGreaterThanOrEqual(CALL_TIMEOUT_MS - 100);
        expect(ms).toBeLessThan(CALL_TIMEOUT_MS + 4_000);
      }
    } finally {
      for (const pid of pids) process.kill(pid, "SIGCONT");
    }
    const resumed = await timed(echo(agent, u));
    expect(resumed.outcome).toBe("ok");
    expect(resumed.ms).toBeLessThan(3_000);
  }, 20_000);
});
