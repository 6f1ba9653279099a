import { EventType } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { AdminClient } from "../helpers/admin.js";
import { registryEvents, spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { startNats } from "../helpers/stack.js";
import { wholeVirtualServer } from "../helpers/admin.js";

// Two registry processes deciding conflicting changes of one existing object at the same moment
// (registryRacesAcrossProcesses.e2e covers creations): updates naming the same If-Match, and a
// consumer's deletion racing a grant to it. Each loser must hear a documented 4xx, never a 500,
// and the stream must hold a consistent history (no grant left naming a deleted consumer).
let nats: NatsServer;
const registries: RegistryProcess[] = [];
const admins: AdminClient[] = [];

beforeAll(async () => {
  nats = await startNats();
  for (const id of ["a", "b"]) registries.push(await spawnRegistry(nats, `registry-${id}`));
  admins.push(...registries.map((r) => r.admin));
});

afterAll(async () => {
  await Promise.all(registries.map((r) => r.process.stop()));
  await nats?.stop();
});


test("updates of one consumer with the same If-Match on two processes: one 200, the other 409 version_conflict", { timeout: 60_000 }, async () => {
  const rounds = 25;
  expect((await admins[0]!.post("/v1/consumers", { name: "contested" })).status).toBe(201);
  const outcomes: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const etag = (await admins[1]!.get("/v1/consumers/contested")).headers.get("etag");
    // Both replicas must have read the last round before this one races.
    expect((await admins[0]!.get("/v1/consumers/contested")).headers.get("etag")).toBe(etag);
    const answers = await Promise.all(
      admins.map((admin, r) => admin.request("PUT", "/v1/consumers/contested", { description: `round ${i} from ${r}` }, { "if-match": etag! })),
    );
    outcomes.push(answers.map((a) => `${a.status}${a.status === 200 ? "" : ` ${a.body?.error?.code}`}`).sort().join(","));
  }
  const counts = outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o]: (acc[o] ?? 0) + 1 }), {});
  console.info(`registryUpdateRaces (If-Match): ${JSON.stringify(counts)}`);
  for (const o of outcomes) expect(o).toBe("200,409 version_conflict");
  const updates = (await registryEvents(nats)).filter((e) => e.type === EventType.consumerUpdated && e.data.name === "contested");
  expect(updates.length).toBe(rounds);
});

test("deleting a consumer on one process while the other grants to it: never a 500, and no grant survives naming the deleted consumer", { timeout: 90_000 }, async () => {
  const rounds = 20;
  expect((await admins[0]!.post("/v1/virtual-servers", { name: "vs-race" })).status).toBe(201);
  const outcomes: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const name = `doomed-${i}`;
    expect((await admins[0]!.post("/v1/consumers", { name })).status).toBe(201);
    await expect.poll(async () => (await admins[1]!.get(`/v1/consumers/${name}`)).status).toBe(200);
    const [deleted, granted] = await Promise.all([
      admins[0]!.delete(`/v1/consumers/${name}`),
      admins[1]!.post("/v1/virtual-servers/vs-race/grants", { subject: { consumer: name } }),
    ]);
    outcomes.push(`delete ${deleted.status}${deleted.body?.error ? ` ${deleted.body.error.code}` : ""} / grant ${granted.status}${granted.body?.error ? ` ${granted.body.error.code}` : ""}`);
  }
  const counts = outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o]: (acc[o] ?? 0) + 1 }), {});
  console.info(`registryUpdateRaces (delete vs grant): ${JSON.stringify(counts)}`);
  for (const o of outcomes) expect(o).not.toMatch(/ 5\d\d/);
  // Every consumer is gone, and neither replica serves a grant naming one.
  for (const admin of admins) {
    const grants = (await wholeVirtualServer(admin, "vs-race")).grants as { subject: { consumer?: string } }[];
    expect(grants.filter((g) => g.subject.consumer?.startsWith("doomed-"))).toEqual([]);
  }
  for (let i = 0; i < rounds; i++) expect((await admins[1]!.get(`/v1/consumers/doomed-${i}`)).status).toBe(404);
});

test("one Idempotency-Key sent to both processes at once: the same request is stored once and answered alike, another request is 422 idempotency_key_reused", { timeout: 60_000 }, async () => {
  const rounds = 20;
  const outcomes: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const key = `twice-${i}`;
    const same = await Promise.all(admins.map((admin) => admin.post("/v1/consumers", { name: `same-${i}` }, { "idempotency-key": key })));
    expect(same.map((a) => a.status)).toEqual([201, 201]);
    expect(same[0]!.headers.get("etag")).toBe(same[1]!.headers.get("etag"));
    const other = `other-${i}`;
    const differ = await Promise.all(admins.map((admin, r) => admin.post("/v1/consumers", { name: `differ-${i}`, description: `from ${r}` }, { "idempotency-key": other })));
    outcomes.push(differ.map((a) => `${a.status}${a.status === 201 ? "" : ` ${a.body?.error?.code}`}`).sort().join(","));
  }
  const counts = outcomes.reduce<Record<string, number>>((acc, o) => ({ ...acc, [o]: (acc[o] ?? 0) + 1 }), {});
  console.info(`registryUpdateRaces (one key, two processes): ${JSON.stringify(counts)}`);
  for (const o of outcomes) expect(o).toBe("201,422 idempotency_key_reused");
  const events = await registryEvents(nats);
  for (let i = 0; i < rounds; i++) {
    expect(events.filter((e) => e.type === EventType.consumerCreated && e.data.name === `same-${i}`)).toHaveLength(1);
    expect(events.filter((e) => e.type === EventType.consumerCreated && e.data.name === `differ-${i}`)).toHaveLength(1);
  }
});
