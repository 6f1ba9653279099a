import type { NatsServer } from "@manifold/nats-server";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { TWO_ADMINS } from "../helpers/admin.js";
import { spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { descriptorsOf } from "../helpers/tcpConnections.js";
import { startNats } from "../helpers/stack.js";

// The registry's admin port bounded nothing per connection count: one peer (no token needed)
// opening connections and sending nothing held one descriptor each until the headers timeout,
// and reconnecting costs it nothing. Once the registry process is out of descriptors, accept()
// fails and another admin's request is reset; the registry cannot open anything itself either.
// The registry runs in a process of its own with 1,024 descriptors (a common default `ulimit -n`),
// so the flood's sockets are counted against it, not against this test. Measured 2026-12-05:
// before, descriptors 23 -> 1,024, 1,501 of the peer's connections open, another admin's five
// commands ECONNRESET in 1-14 ms each; with `REGISTRY_MAX_CONNECTIONS` (512), at most 535
// descriptors and the five commands 201 in 5-109 ms (46 ms alone, on a busy two-core machine).

const { bob: BOB, eve: EVE } = TWO_ADMINS;
const FIXTURE = new URL("../fixtures/idleSockets.mjs", import.meta.url).pathname;
const DESCRIPTORS = 1_024;

/** One admin command on a connection of its own (a client not already connected), with how long it took. */
function commandOnce(base: string, token: string): Promise<{ status: number; text: string; ms: number }> {
  const started = performance.now();
  const body = JSON.stringify({ name: `bob-${crypto.randomUUID()}`, tools: [] });
  return new Promise((resolve) => {
    const finish = (status: number, text: string) => resolve({ status, text, ms: Math.round(performance.now() - started) });
    const req = request(`${base}/v1/virtual-servers`, { method: "POST", agent: false, timeout: 5_000, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => finish(res.statusCode ?? 0, text.slice(0, 120)));
    });
    req.on("timeout", () => {
      req.destroy();
      finish(0, "no answer in 5 s");
    });
    req.on("error", (e: NodeJS.ErrnoException) => finish(0, String(e.code ?? e.message)));
    req.end(body);
  });
}

describe("one peer's silent connections", () => {
  let nats: NatsServer;
  let r: RegistryProcess;
  let attacker: ChildProcess | undefined;

  beforeAll(async () => {
    nats = await startNats();
    r = await spawnRegistry(nats, "registry", undefined, TWO_ADMINS.env);
    execFileSync("prlimit", ["--pid", String(r.process.child.pid), `--nofile=${DESCRIPTORS}:${DESCRIPTORS}`]);
  }, 60_000);
  afterAll(async () => {
    attacker?.kill();
    await r?.process.stop();
    await nats?.stop();
  });

  test("attack: 3,000 connections from one peer cannot take every descriptor of the registry: another admin's commands are answered", async () => {
    const pid = r.process.child.pid!;
    const baseline = await commandOnce(r.url, BOB);
    expect(baseline.status, JSON.stringify(baseline)).toBe(201);
    const before = descriptorsOf(pid);
    let most = 0;
    const sampler = setInterval(() => (most = Math.max(most, descriptorsOf(pid))), 100);
    // Nothing sent on them: each is held until the headers timeout (10 s), then the peer reconnects.
    attacker = spawn(process.execPath, [FIXTURE], { env: { ...process.env, PORT: new URL(r.url).port, COUNT: "3000", HEALTHZ: "0" }, stdio: ["ignore", "pipe", "inherit"] });
    const settled = JSON.parse(await new Promise<string>((resolve) => createInterface({ input: attacker!.stdout! }).once("line", resolve))) as { open: number; failed: number };
    const during = [];
    for (let i = 0; i < 5; i++) during.push(await commandOnce(r.url, BOB));
    clearInterval(sampler);
    attacker.kill();
    attacker = undefined;
    const figures =
      `registry descriptors ${before} -> at most ${most} (limit ${DESCRIPTORS}); one peer: ${settled.open} connections open, ${settled.failed} failed; ` +
      `another admin's commands during: ${during.map((d) => `${d.status} ${d.status ? "" : d.text} in ${d.ms} ms`).join(" | ")}; baseline ${baseline.ms} ms`;
    console.log(figures);
    expect(during.map((d) => d.status), figures).toEqual([201, 201, 201, 201, 201]);
    expect(Math.max(...during.map((d) => d.ms)), figures).toBeLessThan(1_000);
    expect(most, figures).toBeLessThan(DESCRIPTORS - 100);
  }, 60_000);
});

// Bounded connections must not be a new way in: at the bound, what gives way is the oldest
// connection that is silent, idle or still sending its request, never a new admin's.
describe("at REGISTRY_MAX_CONNECTIONS", () => {
  const MAX = 60;
  let nats: NatsServer;
  let r: RegistryProcess;
  const held: Socket[] = [];

  beforeAll(async () => {
    nats = await startNats();
    r = await spawnRegistry(nats, "registry", undefined, { ...TWO_ADMINS.env, REGISTRY_MAX_CONNECTIONS: String(MAX) });
  }, 60_000);
  afterAll(async () => {
    for (const socket of held) socket.destroy();
    await r?.process.stop();
    await nats?.stop();
  });

  test("an admin's slow bodies and slow headers holding every connection: another admin's new connection is served", async () => {
    const { port, host } = new URL(r.url);
    for (let i = 0; i < MAX; i++) {
      const socket = connect(Number(port), "127.0.0.1");
      socket.on("error", () => undefined);
      // Half slow bodies with a valid token (read until the request timeout), half headers never finished.
      socket.write(
        i % 2
          ? `POST /v1/virtual-servers HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${EVE}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`
          : `GET /v1/whoami HTTP/1.1\r\nHost: ${host}\r\n`,
      );
      held.push(socket);
    }
    const trickle = setInterval(() => held.forEach((s, i) => s.writable && s.write(i % 2 ? " " : "x-slow: 1\r\n")), 1_000);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await commandOnce(r.url, BOB));
    clearInterval(trickle);
    expect(answers.map((a) => a.status), JSON.stringify(answers)).toEqual([201, 201, 201]);
  }, 30_000);
});
