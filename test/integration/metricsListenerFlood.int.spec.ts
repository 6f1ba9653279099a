import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { request } from "node:http";
import { connect } from "node:net";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { descriptorsOf } from "../helpers/tcpConnections.js";
import { busEnv, startNats } from "../helpers/stack.js";

// The metrics listeners (the gateway's and the registry's own port, the connector's only one) had
// no connection bound and fastify's defaults otherwise: a 72 s keep-alive, no request timeout, and
// 60 s for headers (checked every 30 s). One peer's silent connections took every descriptor a
// service had (a scrape reset, and the service could open nothing of its own), and a request
// dribbled a byte a second was held for ever. Each service runs in a process of its own with
// 1,024 descriptors (a common `ulimit -n`), so the flood counts against it, not against this test.

const FIXTURE = new URL("../fixtures/idleSockets.mjs", import.meta.url).pathname;
const DESCRIPTORS = 1_024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A Prometheus-style scrape on a connection of its own, with how long it took. */
function scrape(port: number): Promise<{ status: number; ms: number; detail: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const finish = (status: number, detail: string) => resolve({ status, ms: Math.round(performance.now() - started), detail });
    const req = request({ host: "127.0.0.1", port, path: "/metrics", agent: false, timeout: 5_000, headers: { accept: "text/plain;version=0.0.4" } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => finish(res.statusCode ?? 0, text.includes("process_cpu") ? "series" : text.slice(0, 80)));
    });
    req.on("timeout", () => {
      req.destroy();
      finish(0, "no answer in 5 s");
    });
    req.on("error", (e: NodeJS.ErrnoException) => finish(0, String(e.code ?? e.message)));
    req.end();
  });
}

/** How long until the listener closes a connection that sends `first`, then `trickle` once a second (at most `limitMs`); the status line it answered, if any. */
function heldFor(port: number, first: string, trickle: string, limitMs: number): Promise<{ ms: number; answer: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    socket.on("data", (chunk) => (answer ||= chunk.toString("latin1").split("\r\n")[0]!));
    socket.on("error", () => undefined);
    socket.write(first);
    const timer = setInterval(() => socket.writable && socket.write(trickle), 1_000);
    const done = () => {
      clearInterval(timer);
      clearTimeout(limit);
      socket.destroy();
      resolve({ ms: Math.round(performance.now() - started), answer });
    };
    socket.once("close", done);
    const limit = setTimeout(done, limitMs);
  });
}

describe("the metrics listeners under one peer's connections", () => {
  let nats: NatsServer;
  let registry: RegistryProcess;
  let gateway: ServiceProcess;
  let connector: ServiceProcess;
  let attacker: ChildProcess | undefined;
  const ports: Record<string, number> = {};
  const pids: Record<string, number> = {};

  beforeAll(async () => {
    nats = await startNats();
    [ports.registry, ports.gateway, ports.connector] = [await freePort(), await freePort(), await freePort()];
    registry = await spawnRegistry(nats, "registry", { port: await freePort(), metricsPort: ports.registry });
    const gatewayPort = await freePort();
    gateway = spawnService("gateway", serviceEntry("gateway"), [], { ...busEnv(nats, "gateway"), LOG_LEVEL: "warn", GATEWAY_PORT: String(gatewayPort), GATEWAY_METRICS_PORT: String(ports.gateway) });
    connector = spawnService("connector", serviceEntry("connector"), [], { ...busEnv(nats, "connector"), LOG_LEVEL: "warn", CONNECTOR_PORT: String(ports.connector) });
    await gateway.ready(`http://127.0.0.1:${gatewayPort}/readyz`);
    await connector.ready(`http://127.0.0.1:${ports.connector}/readyz`);
    Object.assign(pids, { registry: registry.process.child.pid, gateway: gateway.child.pid, connector: connector.child.pid });
    for (const pid of Object.values(pids)) execFileSync("prlimit", ["--pid", String(pid), `--nofile=${DESCRIPTORS}:${DESCRIPTORS}`]);
  }, 60_000);
  afterAll(async () => {
    attacker?.kill();
    await Promise.all([gateway?.stop(), connector?.stop(), registry?.process.stop()]);
    await nats?.stop();
  });

  for (const service of ["gateway", "connector", "registry"]) {
    test(`attack: 3,000 silent connections to the ${service}'s metrics port: scrapes are answered, descriptors stay below the limit`, async () => {
      const [port, pid] = [ports[service]!, pids[service]!];
      const baseline = await scrape(port);
      expect(baseline.status, JSON.stringify(baseline)).toBe(200);
      const before = descriptorsOf(pid);
      let most = 0;
      const sampler = setInterval(() => (most = Math.max(most, descriptorsOf(pid))), 100);
      attacker = spawn(process.execPath, [FIXTURE], { env: { ...process.env, PORT: String(port), COUNT: "3000", HEALTHZ: "0" }, stdio: ["ignore", "pipe", "inherit"] });
      const settled = JSON.parse(await new Promise<string>((resolve) => createInterface({ input: attacker!.stdout! }).once("line", resolve))) as { open: number; failed: number };
      const during = [];
      for (let i = 0; i < 5; i++) during.push(await scrape(port));
      clearInterval(sampler);
      attacker.kill();
      attacker = undefined;
      const figures =
        `${service} descriptors ${before} -> at most ${most} (limit ${DESCRIPTORS}); one peer: ${settled.open} connections open, ${settled.failed} failed; ` +
        `scrapes during: ${during.map((d) => `${d.status} ${d.detail} in ${d.ms} ms`).join(" | ")}; baseline ${baseline.ms} ms`;
      console.log(figures);
      expect(during.map((d) => d.status), figures).toEqual([200, 200, 200, 200, 200]);
      expect(Math.max(...during.map((d) => d.ms)), figures).toBeLessThan(2_000);
      expect(most, figures).toBeLessThan(DESCRIPTORS - 100);
      // Let the peer's connections close before the next service's turn.
      await sleep(500);
    }, 60_000);
  }

  test("slow headers, a slow body, an idle keep-alive, oversized headers and a wide body are each let go in bounded time, on every metrics port", async () => {
    const host = "Host: 127.0.0.1\r\n";
    const outcomes = await Promise.all(
      Object.entries(ports).map(async ([service, port]) => {
        const [headers, body, idle, oversized, wideBody] = await Promise.all([
          heldFor(port, `GET /metrics HTTP/1.1\r\n${host}`, "x-slow: 1\r\n", 20_000),
          heldFor(port, `POST /metrics HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{`, " ", 20_000),
          heldFor(port, `GET /metrics HTTP/1.1\r\n${host}\r\n`, "", 20_000),
          heldFor(port, `GET /metrics HTTP/1.1\r\n${host}x-big: ${"a".repeat(64 * 1024)}\r\n\r\n`, "", 20_000),
          heldFor(port, `POST /metrics HTTP/1.1\r\n${host}Content-Type: application/json\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n{`, "", 20_000),
        ]);
        return { service, headers, body, idle, oversized, wideBody };
      }),
    );
    console.log(`metrics listeners let go: ${JSON.stringify(outcomes)}`);
    for (const { service, headers, body, idle, oversized, wideBody } of outcomes) {
      // Headers in 5 s and a whole request in 10 s (checked each second); an idle keep-alive after 5 s.
      expect(headers.ms, service).toBeLessThan(8_000);
      expect(body.ms, service).toBeLessThan(13_000);
      expect(idle.ms, service).toBeLessThan(8_000);
      expect(idle.answer, service).toBe("HTTP/1.1 200 OK");
      expect(oversized.answer, service).toBe("HTTP/1.1 431 Request Header Fields Too Large");
      expect(oversized.ms, service).toBeLessThan(1_000);
      // A body past 1 KiB is refused on its Content-Length, before it is read.
      expect(wideBody.answer, service).toBe("HTTP/1.1 413 Payload Too Large");
      expect(wideBody.ms, service).toBeLessThan(1_000);
    }
  }, 30_000);
});
