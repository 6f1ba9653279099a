import type { NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually, type DisposableClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
const MODERN_FIXTURE = new URL("../fixtures/modern-upstream.mjs", import.meta.url).pathname;
const text = (result: unknown) => (result as { content: { text: string }[] }).content[0]!.text;

/**
 * How the connector finds an upstream's era: the probe (`server/discover`) and its fallback to
 * `initialize` for every way a 2025-era server answers it, and the registration's `protocol`
 * setting, which skips the probe (a stdio upstream is then spawned once, not twice).
 */
describe("the era probe and the protocol setting", () => {
  let nats: NatsServer;
  let stack: Stack;
  let sse: SpawnedUpstream;
  let http: SpawnedUpstream;
  let dir: string;
  let agent: DisposableClient;
  let names: Record<string, string>;
  const spawnLog = (name: string) => join(dir, `${name}.spawns`);
  const spawns = async (name: string) => (await readFile(spawnLog(name), "utf8").catch(() => "")).split("\n").filter(Boolean).length;
  const stdio = (name: string, env: Record<string, string> = {}, protocol?: string) => ({
    name,
    transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE], env: { SPAWN_LOG: spawnLog(name), ...env }, ...(protocol ? { protocol } : {}) },
  });
  const era = (name: string) => eventually(async () => (await stack.admin.get(`/v1/upstreams/${name}`)).body.protocolVersion as string | undefined, 10_000, 50);

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "manifold-era-"));
    [stack, sse, http] = await Promise.all([startStack(nats.url), spawnEverything("sse"), spawnEverything("streamableHttp")]);
    await registerUpstreams(
      stack,
      stdio("refuses-probe"),
      stdio("silent-probe", { SILENT_DISCOVER: "1" }),
      stdio("pinned-2025", {}, "2025"),
      {
        name: "pinned-modern",
        transport: { type: "stdio", command: process.execPath, args: [MODERN_FIXTURE, "stdio"], env: { SPAWN_LOG: spawnLog("pinned-modern") }, protocol: "2026-07-28" },
      },
      { name: "everything-sse", transport: { type: "sse", url: sse.url } },
      { name: "everything-http", transport: { type: "streamable-http", url: http.url } },
    );
    names = await createVirtualServer(stack, "probe", [
      { upstream: "refuses-probe", tool: "echo" },
      { upstream: "refuses-probe", tool: "crash" },
      { upstream: "refuses-probe", tool: "pid" },
      { upstream: "silent-probe", tool: "echo" },
      { upstream: "pinned-2025", tool: "echo" },
      { upstream: "pinned-modern", tool: "echo" },
      { upstream: "everything-sse", tool: "echo" },
      { upstream: "everything-http", tool: "echo" },
    ]);
    agent = await connectHttp(stack.mcpUrl("probe"));
  });

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await Promise.all([sse?.stop(), http?.stop()]);
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const call = (key: string, args: Record<string, unknown> = {}) => agent.callTool({ name: names[key]!, arguments: args });

  test("a 2025-era upstream is found whether it refuses the probe (stdio: method not found; Streamable HTTP: 400; SSE) or never answers it (stdio)", async () => {
    for (const name of ["refuses-probe", "silent-probe", "everything-sse", "everything-http"]) {
      expect(await era(name), name).toMatch(/^2025-/);
    }
    expect(text(await call("refuses-probe/echo", { message: "a" }))).toBe("echo: a");
    expect(text(await call("silent-probe/echo", { message: "b" }))).toBe("echo: b");
    expect(text(await call("everything-sse/echo", { message: "c" }))).toBe("Echo: c");
    expect(text(await call("everything-http/echo", { message: "d" }))).toBe("Echo: d");
  });

  test("a pinned stdio upstream (2025 or 2026-07-28) is spawned once; an unpinned one twice (the probe's sibling)", async () => {
    expect(await era("pinned-2025")).toMatch(/^2025-/);
    expect(await era("pinned-modern")).toBe("2026-07-28");
    expect(text(await call("pinned-2025/echo", { message: "p" }))).toBe("echo: p");
    expect(text(await call("pinned-modern/echo", { message: "m" }))).toBe("echo: m");
    expect(await spawns("pinned-2025")).toBe(1);
    expect(await spawns("pinned-modern")).toBe(1);
    expect(await spawns("refuses-probe")).toBe(2);
  });

  test("a reconnection reuses the era learned by the first probe: the restarted upstream is spawned once", async () => {
    const before = await spawns("refuses-probe");
    const firstPid = text(await call("refuses-probe/pid"));
    await call("refuses-probe/crash").catch(() => undefined);
    const secondPid = await eventually(async () => {
      const pid = await call("refuses-probe/pid").then(text, () => undefined);
      return pid && pid !== firstPid ? pid : undefined;
    }, 15_000, 100);
    expect(secondPid).not.toBe(firstPid);
    expect(await spawns("refuses-probe")).toBe(before + 1);
  });

  test("the registry refuses an unknown protocol, naming the field", async () => {
    const res = await stack.admin.post("/v1/upstreams", { name: "bad-protocol", transport: { type: "stdio", command: "node", protocol: "2027" } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect(res.body.error.message).toContain("/transport/protocol");
  });
});
