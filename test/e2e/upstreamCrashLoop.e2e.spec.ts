import type { NatsServer } from "@manifold/nats-server";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const FIXTURE = new URL("../fixtures/hostileStdioLifecycle.mjs", import.meta.url).pathname;
const SECRET = "s3cr3t-crash-loop-4d7a0b9e21";

let nats: NatsServer;
let stack: Stack;
let dir: string;
const logs: string[] = [];

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "crash-loop-"));
  stack = await startStack(nats.url, { HEALTH_HEARTBEAT_MS: "200" }, { secretsEnv: { MANIFOLD_SECRET_CRASH: SECRET }, logs });
});

afterAll(async () => {
  await stack?.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

const spawns = async (file: string) => (await readFile(join(dir, file), "utf8").catch(() => "")).trim().split("\n").filter(Boolean).length;
/** Each try registers its own upstream: the suite's retry runs the test again on the same stack. */
let tries = 0;

/**
 * A stdio upstream whose process exits at start, every time (a bad release, a missing file): it is
 * restarted with a back-off that grows (not in a loop), its health is `down` with a reason that
 * says what happened (its process exited, and how), and neither the reason nor the logs hold
 * anything of the secret it was given (which it printed on its way out). Before, the reason
 * was the SDK's "Connection closed", for a process that exits as for one that closes its stdout.
 */
test("a stdio upstream that exits at every start: bounded restarts, health down naming the exit, no secret anywhere", async () => {
  const name = `crashy${++tries}`;
  const log = `spawns${tries}`;
  const started = Date.now();
  const res = await stack.admin.post("/v1/upstreams", {
    name,
    transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { EXIT_AT_START: "1", SPAWN_LOG: join(dir, log) }, secretEnv: { API_TOKEN: "env:MANIFOLD_SECRET_CRASH" } },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  expect(res.body.discovery?.status).toBe("failed");

  const health = await eventually(async () => {
    const { body } = await stack.admin.get(`/v1/upstreams/${name}`);
    return body.health?.status === "down" && /exited/.test(body.health.replicas?.[0]?.reason ?? "") ? body.health : undefined;
  }, 10_000, 100).catch(async () => (await stack.admin.get(`/v1/upstreams/${name}`)).body.health);
  expect(health.status).toBe("down");
  expect(health.replicas[0].reason).toMatch(/process exited with code 1/);

  // Restarts: a back-off doubling from 250 ms after each failed attempt (0.25, 0.5, 1, 2, 4, 8 s),
  // so at most six attempts begin in 14 s however slow each is, and each spawns at most two
  // processes (the era probe's sibling and the session's: docs/protocol.md). A loaded machine
  // only slows attempts down. Counted over a window after 6 s instead, a loaded CI saw 5 spawns
  // in 8 s (attempt gaps 1.4, 1.5, 2.0, 3.0, 4.9 s: the back-off grew, each attempt took ~1 s).
  // Respawned in a loop (~1.2 a second, as before the back-off) it would be 30 or more.
  await new Promise((r) => setTimeout(r, Math.max(0, 14_000 - (Date.now() - started))));
  const spawned = await spawns(log);
  expect(spawned, `${spawned} spawns in 14 s`).toBeLessThanOrEqual(12);
  expect(spawned, "it is tried again").toBeGreaterThanOrEqual(4);
  expect(logs.filter((line) => line.includes(SECRET))).toEqual([]);
  expect(JSON.stringify(health)).not.toContain(SECRET);
}, 30_000);

/**
 * A stdio upstream that starts and then never answers the handshake (hung at start-up): each
 * connection attempt ends at `CONNECT_TIMEOUT_MS`, the health says so, and it is tried again.
 * Before, the SDK's own 60 s bounded the handshake: the upstream showed `connecting`, with no
 * reason, for a minute per attempt, whatever `CONNECT_TIMEOUT_MS` said.
 */
test("a stdio upstream that never answers initialize: each attempt ends at CONNECT_TIMEOUT_MS, health down saying why", async () => {
  const nats2 = await startNats();
  const stack2 = await startStack(nats2.url, { HEALTH_HEARTBEAT_MS: "200", CONNECT_TIMEOUT_MS: "1000" });
  try {
    const started = Date.now();
    const res = await stack2.admin.post("/v1/upstreams", {
      name: "mute",
      transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { NEVER_INIT: "1", SPAWN_LOG: join(dir, "mute") }, protocol: "2025" },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const health = await eventually(async () => {
      const { body } = await stack2.admin.get("/v1/upstreams/mute");
      return body.health?.status === "down" ? body.health : undefined;
    }, 8_000, 100).catch(async () => (await stack2.admin.get("/v1/upstreams/mute")).body.health);
    expect(health.replicas?.[0], `after ${Date.now() - started} ms`).toMatchObject({ status: "down", reason: expect.stringMatching(/timed out/i) });
    // Tried again: the pinned era spawns it once per attempt.
    await eventually(async () => ((await readFile(join(dir, "mute"), "utf8")).trim().split("\n").length >= 2 ? true : undefined), 8_000, 100);
  } finally {
    await stack2.close();
    await nats2.stop();
  }
}, 30_000);

/**
 * A 2025 stdio upstream that served, then exits at every restart: between reconnection attempts its
 * calls are refused at once, `upstream_unavailable` "is not connected: its process exited…", and the
 * refusal says when the next attempt is due (`data.retryAfterMs`), as an open circuit's does. Before
 * (2026-12-07), it said nothing of when to come back: an agent could only guess, or poll.
 */
test("a 2025 upstream between reconnection attempts: its calls are refused saying when the next attempt is due", async () => {
  const broken = join(dir, "broken");
  await stack.admin.post("/v1/upstreams", {
    name: "relapsing",
    transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { EXIT_IF_EXISTS: broken }, protocol: "2025" },
  });
  const names = await createVirtualServer(stack, "relapsing", [
    { upstream: "relapsing", tool: "echo" },
    { upstream: "relapsing", tool: "crash" },
  ]);
  await using agent = await connectHttp(stack.mcpUrl("relapsing"));
  const echo = () => agent.callTool({ name: names["relapsing/echo"]!, arguments: { message: "x" } });
  expect(await echo()).toMatchObject({ content: [{ text: "echo: x" }] });
  await writeFile(broken, "");
  await agent.callTool({ name: names["relapsing/crash"]!, arguments: {} });
  const refusal = await eventually(async () => {
    const error = await rpcError(echo());
    return /is not connected/.test(error.message) ? error : undefined;
  }, 10_000, 50);
  expect(refusal.message).toMatch(/upstream 'relapsing' is not connected: .*its process exited with code [13]/);
  // The back-off doubles from 250 ms and is at most 30 s for stdio: the hint lies between.
  expect(refusal.data?.retryAfterMs, JSON.stringify(refusal.data)).toBeGreaterThan(0);
  expect(refusal.data.retryAfterMs).toBeLessThanOrEqual(30_000);
}, 30_000);
