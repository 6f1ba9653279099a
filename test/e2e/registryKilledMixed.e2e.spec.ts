import { freePort, type NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { AdminClient } from "../helpers/admin.js";
import { spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { startNats } from "../helpers/stack.js";
import { wholeVirtualServer } from "../helpers/admin.js";

// The registry killed (SIGKILL) with updates, deletions (each revoking its consumer's grants first)
// and grants without an id in flight (registryKilled.e2e covers creations and key issuance):
// retried with their Idempotency-Keys, each is answered as it was decided, and applied once.
const EACH = 12;

let nats: NatsServer;
let registry: RegistryProcess | undefined;
let ports: { port: number; metricsPort: number };
let admin: AdminClient;

/** On the same ports each time: the admin client goes on where the killed registry was. */
const start = async () => void (registry = await spawnRegistry(nats, "registry", ports));

beforeAll(async () => {
  nats = await startNats();
  ports = { port: await freePort(), metricsPort: await freePort() };
  await start();
  admin = registry!.admin;
  expect((await admin.post("/v1/virtual-servers", { name: "v" })).status).toBe(201);
  for (let i = 0; i < EACH; i++) {
    for (const name of [`u-${i}`, `d-${i}`, `g-${i}`]) expect((await admin.post("/v1/consumers", { name })).status).toBe(201);
    for (const n of [0, 1]) expect((await admin.post("/v1/virtual-servers/v/grants", { grantId: `d-${i}-${n}`, subject: { consumer: `d-${i}` } })).status).toBe(201);
  }
}, 60_000);

afterAll(async () => {
  await registry?.process.stop();
  await nats?.stop();
});

type Command = { method: string; path: string; body?: unknown; key: string };
type Outcome = { status: number; etag?: string | null; grantId?: string };
const send = ({ method, path, body, key }: Command): Promise<Outcome> =>
  admin.request(method, path, body, { "idempotency-key": key }).then(
    (res) => ({ status: res.status, etag: res.headers.get("etag"), grantId: res.body?.grantId }),
    () => ({ status: 0 }),
  );

test("killed mid-command: updates, deletions and grants retried with their keys are each applied once", { timeout: 90_000 }, async () => {
  const commands: Command[] = Array.from({ length: EACH }, (_, i) => [
    { method: "PUT", path: `/v1/consumers/u-${i}`, body: { description: "second" }, key: `update-${i}` },
    { method: "DELETE", path: `/v1/consumers/d-${i}`, key: `delete-${i}` },
    { method: "POST", path: "/v1/virtual-servers/v/grants", body: { subject: { consumer: `g-${i}` } }, key: `grant-${i}` },
  ]).flat();
  const first = commands.map(send);
  await new Promise((r) => setTimeout(r, 60));
  registry!.process.child.kill("SIGKILL");
  const before = await Promise.all(first);
  const restartedAt = Date.now();
  await start();
  const readyMs = Date.now() - restartedAt;
  const after = await Promise.all(commands.map(send));
  console.info(`registryKilledMixed: ${before.filter((o) => o.status !== 0).length} of ${commands.length} answered before the kill; ready again after ${readyMs} ms`);

  for (const [i, outcome] of after.entries()) {
    const { method, key } = commands[i]!;
    expect(outcome.status, key).toBe(method === "PUT" ? 200 : method === "DELETE" ? 204 : 201);
    const earlier = before[i]!;
    if (earlier.status !== 0) expect([outcome.status, outcome.etag, outcome.grantId], key).toEqual([earlier.status, earlier.etag, earlier.grantId]);
  }
  const vs = (await wholeVirtualServer(admin, "v")) as { grants: { grantId: string; subject: { consumer?: string } }[] };
  for (let i = 0; i < EACH; i++) {
    const updates = (await admin.get(`/v1/consumers/u-${i}/history`)).body.items.map((e: { type: string }) => e.type);
    expect(updates, `u-${i}`).toEqual(["consumer.created", "consumer.updated"]);
    const deleted = (await admin.get(`/v1/consumers/d-${i}/history`)).body.items.map((e: { type: string }) => e.type);
    expect(deleted, `d-${i}`).toEqual(["consumer.created", "consumer.deleted"]);
    expect(vs.grants.filter((g) => g.subject.consumer === `d-${i}`), `d-${i}`).toEqual([]);
    expect(vs.grants.filter((g) => g.subject.consumer === `g-${i}`), `g-${i}`).toHaveLength(1);
  }
});
