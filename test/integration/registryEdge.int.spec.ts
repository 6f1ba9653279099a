import type { NatsServer } from "@manifold/nats-server";
import { jetstream } from "@nats-io/jetstream";
import { connect, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { ADMIN_TOKEN, connectAs, startNats } from "../helpers/stack.js";

// The admin port as a caller without a token sees it: what it may hold there, and for how long.

let nats: NatsServer;
let r: RegistryOnly;
let port: number;

beforeAll(async () => {
  nats = await startNats();
  r = await startRegistry(nats.url, { REGISTRY_HEADERS_TIMEOUT_MS: "1000", REGISTRY_REQUEST_TIMEOUT_MS: "2000" });
  port = (r.registry.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await r?.close();
  await nats?.stop();
});

/** A raw connection: what it was answered, and when it was closed (ms after it opened). */
function raw(request: string) {
  const opened = performance.now();
  const socket: Socket = connect(port, "127.0.0.1");
  let answer = "";
  socket.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(performance.now() - opened)));
  socket.on("error", () => undefined);
  socket.write(request);
  return { socket, closed, answer: () => answer };
}

test("attack: a body sent to a path that does not exist is not read: 404 at once, connection closed", async () => {
  // 1 MiB announced, 10 bytes sent: before, the registry waited for the rest and held it (1,000 such ~1 GiB).
  const c = raw(`POST /v1/nowhere HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${1024 * 1024}\r\n\r\n{"a":"bbbb`);
  const closedAfter = await c.closed;
  expect(c.answer()).toMatch(/^HTTP\/1\.1 404/);
  expect(c.answer()).toContain('"code":"not_found"');
  expect(closedAfter).toBeLessThan(1_000);
});

test("attack: a request that never finishes is cut when its time is up (408), with or without a token", async () => {
  for (const authorization of ["", `Authorization: Bearer ${ADMIN_TOKEN}\r\n`]) {
    const c = raw(`POST /v1/consumers HTTP/1.1\r\nHost: 127.0.0.1\r\n${authorization}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na`);
    const closedAfter = await c.closed;
    expect(closedAfter).toBeLessThan(4_500);
    expect(c.answer()).toMatch(/^HTTP\/1\.1 (408|401)/);
  }
  // Headers that never end: cut after the headers timeout.
  const slow = raw("GET /v1/consumers HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  expect(await slow.closed).toBeLessThan(3_500);
});

test("an idle keep-alive connection is closed after 5 s, not kept for minutes", async () => {
  const c = raw(`GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
  const closedAfter = await c.closed;
  expect(c.answer()).toMatch(/^HTTP\/1\.1 200/);
  expect(closedAfter).toBeGreaterThan(4_000);
  expect(closedAfter).toBeLessThan(7_500);
}, 15_000);

test("the bearer scheme is case-insensitive", async () => {
  const res = await fetch(`http://127.0.0.1:${port}/v1/consumers`, { headers: { authorization: `bearer ${ADMIN_TOKEN}` } });
  expect(res.status).toBe(200);
});

test("attack: an audit query that cannot finish in time answers what it read and where to go on, never a short page as if it were all", async () => {
  // 20,000 records, only the last one the consumer's: reading them all takes longer than a page may here.
  const gateway = await connectAs(nats, "gateway");
  const js = jetstream(gateway);
  const record = (consumer: string) => JSON.stringify({ at: new Date().toISOString(), consumer, virtualServer: "vs", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 });
  const noise = record("consumer:noise");
  for (let i = 0; i < 20_000; i += 1_000) await Promise.all(Array.from({ length: 1_000 }, () => js.publish("manifold.audit.vs", noise)));
  await js.publish("manifold.audit.vs", record("consumer:needle"));
  await gateway.close();

  const found: unknown[] = [];
  let pages = 0;
  let after: number | undefined;
  do {
    const res = await r.admin.get(`/v1/audit?consumer=needle&limit=10${after === undefined ? "" : `&after=${after}`}`);
    expect(res.status).toBe(200);
    found.push(...(res.body.items as unknown[]));
    after = res.body.next as number | undefined;
    pages++;
  } while (after !== undefined && pages < 100);
  // Before: one page, empty, without `next`, after 2 s: the record was there and never reached.
  expect(found).toHaveLength(1);
}, 120_000);

test("a page of large audit records is read at once: pulls by bytes never wait out a heartbeat", async () => {
  // 30 records of ~900 KB each (values recorded); a pull the server cannot fill must end quickly.
  const gateway = await connectAs(nats, "gateway", "gateway-big");
  const js = jetstream(gateway);
  const big = { at: new Date().toISOString(), consumer: "consumer:big", virtualServer: "big", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0, arguments: { blob: "x".repeat(900 * 1024) } };
  for (let i = 0; i < 30; i++) await js.publish("manifold.audit.big", JSON.stringify(big));
  await gateway.close();
  const started = performance.now();
  let items = 0;
  let pages = 0;
  let after: number | undefined;
  do {
    const res = await r.admin.get(`/v1/audit?virtualServer=big&limit=50${after === undefined ? "" : `&after=${after}`}`);
    expect(res.status).toBe(200);
    items += (res.body.items as unknown[]).length;
    after = res.body.next as number | undefined;
    pages++;
  } while (after !== undefined && pages < 40);
  expect(items).toBe(30);
  // A review measured 4 pages and 6 s when pulls by bytes had no `expires` (the 2 s budget cut each page).
  // Read at once it takes ~3.7 s here (27 MB through JetStream and HTTP), 4.0 s with other tests
  // running beside CI: the bound sits between that and the failure's 6 s.
  // Pages hold at most 4 MiB of records each (the one crossing it included): 5 of these a page.
  expect(pages).toBeLessThanOrEqual(Math.ceil(30 / 5));
  expect(performance.now() - started).toBeLessThan(5_000);
}, 60_000);

test("attack: scrapes of /metrics without a token cannot make the registry flood JetStream: at most one stream lookup a second", async () => {
  const watcher = await connectAs(nats, "operator", "jetstream-watcher");
  try {
    let lookups = 0;
    watcher.subscribe("$JS.API.>", { callback: (_err, msg) => void ((msg.subject === "$JS.API.INFO" || msg.subject.startsWith("$JS.API.STREAM.INFO.")) && lookups++) });
    await watcher.flush();
    // Before: each scrape made two JetStream API requests (the account's, then the stream's): 400 for these 200.
    const started = performance.now();
    const scrapes = await Promise.all(Array.from({ length: 200 }, () => fetch(`http://127.0.0.1:${(r.registry.metricsApp.server.address() as AddressInfo).port}/metrics`).then(async (res) => ({ status: res.status, text: await res.text() }))));
    for (const { status, text } of scrapes) {
      expect(status).toBe(200);
      expect(text).toMatch(/^manifold_projection_lag_events(\{[^}]*\})? \d+$/m);
    }
    // One lookup per second begun: the bound follows the time the scrapes took on this machine.
    const seconds = Math.ceil((performance.now() - started) / 1_000);
    await watcher.flush();
    expect(lookups).toBeLessThanOrEqual(seconds);
  } finally {
    await watcher.close();
  }
});
