import { spawnService, serviceEntry, type ServiceName, type ServiceProcess } from "@manifold/cli";
import { freePort, startNatsServer, type NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { connectAs } from "../helpers/stack.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { AdminClient, wholeVirtualServer } from "../helpers/admin.js";
import { connectClient, eventually, type DisposableClient } from "../helpers/mcp.js";

// nats-server killed (-9) and restarted 10 s later on the same port and store, under a load of
// tool calls and admin commands, with every service in its own process as deployed. nats.js's
// own recovery of the ordered consumer used to leave every projection stalled for ~40 s here.
const TOKEN = "test-admin-token-0123456789";
const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let nats: NatsServer;
let natsPort: number;
let upstream: RecordingUpstream;
let admin: AdminClient;
const processes: ServiceProcess[] = [];
/** `metrics`: a gateway's or registry's own listener, where it tells its sequence (its /readyz does not). */
const nodes: { name: string; url: string; metrics?: string }[] = [];
const gateways: string[] = [];

async function startService(name: ServiceName, label: string): Promise<string> {
  const port = await freePort();
  const prefix = name.toUpperCase();
  // Gateways and registries side by side on one host: each its own metrics port.
  const metrics: Record<string, string> = name === "connector" ? {} : { [`${prefix}_METRICS_PORT`]: String(await freePort()) };
  const env = { ...nats.env(name), LOG_LEVEL: "info", MANIFOLD_ADMIN_TOKEN: TOKEN, GATEWAY_AUTH: "required", ...metrics, [`${prefix}_HOST`]: "127.0.0.1", [`${prefix}_PORT`]: String(port) };
  const child = spawnService(label, serviceEntry(name), [], env, join(dir, `${label}.log`));
  processes.push(child);
  const url = `http://127.0.0.1:${port}`;
  await child.ready(`${url}/readyz`);
  const metricsPort = metrics[`${prefix}_METRICS_PORT`];
  nodes.push({ name: label, url, ...(metricsPort ? { metrics: `http://127.0.0.1:${metricsPort}/metrics` } : {}) });
  return url;
}

const readiness = (url: string) =>
  fetch(`${url}/readyz`).then(
    async (r) => ({ ready: r.status === 200, sequence: ((await r.json()) as { sequence?: number }).sequence ?? -1 }),
    () => ({ ready: false, sequence: -1 }),
  );
/** The node's projection sequence: a connector's /readyz tells it, a gateway's or registry's metrics listener. */
const sequenceOf = (node: { url: string; metrics?: string }) =>
  node.metrics
    ? fetch(node.metrics).then(
        async (r) => Number(/^manifold_projection_sequence(?:\{[^}]*\})? (\d+)/m.exec(await r.text())?.[1] ?? -1),
        () => -1,
      )
    : readiness(node.url).then((r) => r.sequence);
const initialize = (gateway: string, key: string) =>
  fetch(`${gateway}/mcp/load`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` },
    body: JSON.stringify(INIT),
  }).then((r) => r.status, () => 0);

/** Every event in the registry stream as `sequence commandId`, read straight from JetStream. */
async function streamContents(): Promise<string[]> {
  const nc = await connectAs(nats, "operator");
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info("MANIFOLD_REGISTRY")).state.last_seq;
    const out: string[] = [];
    for (let seq = 1; seq <= last; seq++) {
      const message = await jsm.streams.getMessage("MANIFOLD_REGISTRY", { seq });
      out.push(`${message!.seq} ${(message!.json() as { meta: { commandId: string } }).meta.commandId}`);
    }
    return out;
  } finally {
    await nc.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "manifold-restart-"));
  natsPort = await freePort();
  nats = await startNatsServer({ port: natsPort, storeDir: join(dir, "nats"), operator: true });
  upstream = await startRecordingUpstream();
  admin = new AdminClient(await startService("registry", "registry"), TOKEN);
  await startService("connector", "connector");
  gateways.push(await startService("gateway", "gateway-1"), await startService("gateway", "gateway-2"));
  expect((await admin.post("/v1/upstreams", { name: "rec", transport: { type: "streamable-http", url: upstream.url } })).status).toBe(201);
  expect((await admin.post("/v1/virtual-servers", { name: "load", tools: [{ upstream: "rec", tool: "echo" }] })).status).toBe(201);
  for (const consumer of ["loader", "victim"]) {
    expect((await admin.post("/v1/consumers", { name: consumer })).status).toBe(201);
    expect((await admin.post("/v1/virtual-servers/load/grants", { grantId: consumer, subject: { consumer } })).status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  for (const child of processes.reverse()) await child.stop();
  await upstream?.close();
  await nats?.stop();
  await rm(dir, { recursive: true, force: true });
});

test("after nats-server is killed and restarted, every node follows again within 3 s, nothing is lost or doubled, and admin commands get 503 meanwhile", async () => {
  const loaderKey = (await admin.post("/v1/consumers/loader/keys", {})).body.key as string;
  const victim = (await admin.post("/v1/consumers/victim/keys", {})).body as { keyId: string; key: string };
  const tool = (await wholeVirtualServer(admin, "load")).tools[0].exposedName as string;
  for (const gateway of gateways) expect(await eventually(async () => ((await initialize(gateway, victim.key)) === 200 ? true : undefined))).toBe(true);

  // Load: tool calls through both gateways, and admin commands each retried with its idempotency key until stored.
  let running = true;
  const calls: { at: number; ok: boolean; code?: unknown }[] = [];
  const callLoop = async (gateway: string) => {
    let client: DisposableClient | undefined;
    while (running) {
      const at = Date.now();
      try {
        client ??= await connectClient(new StreamableHTTPClientTransport(new URL(`${gateway}/mcp/load`), { requestInit: { headers: { authorization: `Bearer ${loaderKey}` } } }));
        await client.callTool({ name: tool, arguments: { message: "x" } });
        calls.push({ at, ok: true });
      } catch (error) {
        calls.push({ at, ok: false, code: (error as { data?: { code?: string } }).data?.code ?? (error as Error).message });
        await client?.close().catch(() => undefined);
        client = undefined;
      }
      await sleep(20);
    }
    await client?.close();
  };
  const answers: { at: number; status: number; code?: string }[] = [];
  const stored: string[] = [];
  const adminLoop = async () => {
    for (let n = 0; running; n++) {
      const commandId = `load-${n}-${Date.now()}`;
      for (let attempt = 0; ; attempt++) {
        const res = await admin.post("/v1/consumers", { name: `c${n}` }, { "idempotency-key": commandId }).catch(() => ({ status: 0, body: undefined }));
        answers.push({ at: Date.now(), status: res.status, code: res.body?.error?.code });
        // A retry of a command whose first attempt was stored finds the consumer there: done too.
        if (res.status === 201 || (attempt > 0 && res.status === 409)) break;
        await sleep(50);
      }
      stored.push(commandId);
      await sleep(30);
    }
  };
  const load = [callLoop(gateways[0]!), callLoop(gateways[1]!), adminLoop()];

  await sleep(1_500);
  const before = await streamContents();
  nats.process.kill("SIGKILL");
  const killedAt = Date.now();
  // A node that cannot follow the stream says so.
  const notReady = await eventually(async () => ((await Promise.all(nodes.map((n) => readiness(n.url)))).every((r) => !r.ready) ? true : undefined), 3_000, 50);
  expect(notReady).toBe(true);
  await sleep(10_000 - (Date.now() - killedAt));

  nats = await startNatsServer({ port: natsPort, storeDir: join(dir, "nats"), operator: true });
  const restartedAt = Date.now();
  // A key revoked right after the restart is refused by every gateway within 3 s: usually within 0.35 s; in about one run
  // in three a node subscribed again in time gets the event only after ~2.1 s (docs/operations.md, "Recovery bound").
  let revocation: { status: number; body: any };
  do revocation = await admin.delete(`/v1/consumers/victim/keys/${victim.keyId}`);
  while (revocation.status === 503 && Date.now() - restartedAt < 5_000 && (await sleep(20), true));
  expect(revocation.status).toBe(204);
  const revokedSequence = (await admin.get("/v1/consumers/victim")).body.version as number;
  const resumedAfter: Record<string, number> = {};
  const refusedAfter: Record<string, number> = {};
  await eventually(
    async () => {
      await Promise.all([
        ...nodes.map(async (node) => {
          const r = await readiness(node.url);
          if (r.ready && (await sequenceOf(node)) >= revokedSequence) resumedAfter[node.name] ??= Date.now() - restartedAt;
        }),
        ...gateways.map(async (gateway, i) => {
          if ((await initialize(gateway, victim.key)) === 401) refusedAfter[`gateway-${i + 1}`] ??= Date.now() - restartedAt;
        }),
      ]);
      return Object.keys(resumedAfter).length === nodes.length && Object.keys(refusedAfter).length === gateways.length ? true : undefined;
    },
    30_000,
    25,
  );
  console.log("resumed after restart (ms):", resumedAfter, "revocation refused after (ms):", refusedAfter);
  for (const ms of [...Object.values(resumedAfter), ...Object.values(refusedAfter)]) expect(ms).toBeLessThan(3_000);

  // Both call loops get through again (a session write lost as the bus came back fails within 2 s, then the loop retries).
  await eventually(() => (calls.filter((c) => c.ok && c.at > restartedAt).length >= 4 ? true : undefined), 15_000, 50);
  await sleep(1_000);
  running = false;
  await Promise.all(load);

  // Admin commands: stored, or refused as retryable; never an internal error.
  const refusals = answers.filter((a) => a.status !== 201 && a.status !== 409);
  expect(refusals.filter((a) => !(a.status === 503 && a.code === "bus_unavailable"))).toEqual([]);
  // Calls: failed only while the bus was away (and the first moments back), none later.
  const failed = calls.filter((c) => !c.ok);
  console.log(`calls: ${calls.length}, failed: ${failed.length} (${[...new Set(failed.map((c) => c.code))].join(", ")}); admin refusals: ${refusals.length}`);
  expect(calls.filter((c) => c.ok && c.at > restartedAt).length).toBeGreaterThan(0);
  expect(failed.filter((c) => c.at < killedAt - 100 || c.at > restartedAt + 2_000)).toEqual([]);

  // The stream: everything from before is there unchanged, no command is stored twice, every stored command once.
  const after = await streamContents();
  expect(after.slice(0, before.length)).toEqual(before);
  const ids = after.map((line) => line.split(" ")[1]!);
  expect(ids.length).toBe(new Set(ids).size);
  for (const commandId of stored) expect(ids.filter((id) => id === commandId)).toHaveLength(1);
  expect(stored.length).toBeGreaterThan(10);
}, 90_000);
