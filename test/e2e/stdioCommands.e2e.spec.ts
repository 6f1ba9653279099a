import { CommandType, RegisterUpstreamBody } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// Defence in depth behind the registry's check: a stdio registration the connector's own
// MANIFOLD_STDIO_COMMANDS does not allow (recorded before the list existed, or by a registry
// given a longer one) is never spawned, and its health says why.
const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("a connector spawns only the stdio commands its own list allows", () => {
  let nats: NatsServer;
  let stack: Stack;
  let dir: string;

  beforeAll(async () => {
    nats = await startNats();
    dir = await mkdtemp(join(tmpdir(), "manifold-stdio-commands-"));
    stack = await startStack(nats.url, { HEALTH_HEARTBEAT_MS: "300" });
  });
  afterAll(async () => {
    await stack?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("registrations in the event stream outside the connector's list never run, and report why", async () => {
    const shellMarker = join(dir, "shell.marker");
    const preloadMarker = join(dir, "preload.marker");
    const payload = join(dir, "payload.cjs");
    await writeFile(payload, `require("node:fs").writeFileSync(${JSON.stringify(preloadMarker)}, String(process.pid));\n`);
    const attacks = {
      shell: { type: "stdio", command: "/bin/sh", args: ["-c", 'touch "$0"', shellMarker] },
      preload: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE], env: { NODE_OPTIONS: `--require ${payload}` } },
    };
    // Each payload does what it says when run: a marker left behind would mean it ran.
    execFileSync(attacks.shell.command, attacks.shell.args);
    execFileSync(process.execPath, ["-e", ""], { env: { PATH: process.env.PATH ?? "", ...attacks.preload.env } });
    expect([existsSync(shellMarker), existsSync(preloadMarker)]).toEqual([true, true]);
    await Promise.all([rm(shellMarker), rm(preloadMarker)]);

    // Straight into the event stream, past the admin API's check: as a registry recorded them before the list.
    for (const [name, transport] of Object.entries(attacks)) {
      await stack.registry.execute({ type: CommandType.registerUpstream, ...RegisterUpstreamBody.parse({ name, transport }) });
    }
    // A listed command beside them is spawned: the connector is serving, and refuses only these.
    const spawnLog = join(dir, "calm.spawns");
    const calm = await stack.admin.post("/v1/upstreams", { name: "calm", transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE], env: { SPAWN_LOG: spawnLog } } });
    expect(calm.body.discovery?.status, JSON.stringify(calm.body)).toBe("ok");
    expect((await readFile(spawnLog, "utf8")).trim()).toMatch(/^\d+(\n\d+)*$/);

    const seen = new Map<string, { discovery: unknown; health: { status: string; replicas: { reason?: string }[] } }>();
    for (const name of Object.keys(attacks)) {
      const discovery = (await stack.admin.post(`/v1/upstreams/${name}/discover`, {})).body.discovery;
      const health = await eventually(async () => {
        const h = (await stack.admin.get(`/v1/upstreams/${name}`)).body.health;
        return h?.replicas?.[0] ? h : undefined;
      }, 15_000, 100);
      seen.set(name, { discovery, health });
    }
    // Past a few restart attempts: nothing ran.
    await sleep(1_500);
    expect([existsSync(shellMarker), existsSync(preloadMarker)]).toEqual([false, false]);

    for (const [name, field] of [["shell", "transport.command"], ["preload", "transport.env.NODE_OPTIONS"]] as const) {
      const { discovery, health } = seen.get(name)!;
      expect(JSON.stringify(discovery)).toMatch(/"status":"failed".*MANIFOLD_STDIO_COMMANDS/);
      expect(health.status).toBe("down");
      const reason = health.replicas[0]!.reason!;
      expect(reason).toContain(`the connector refuses to start this stdio upstream: ${field}`);
      expect(reason).toContain("MANIFOLD_STDIO_COMMANDS");
      expect(reason).not.toContain(payload);
    }
  });
});
