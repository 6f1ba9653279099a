import { EventType } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { AdminClient } from "../helpers/admin.js";
import { registryEvents, spawnRegistry, type RegistryProcess } from "../helpers/registryProcess.js";
import { startNats } from "../helpers/stack.js";

// Two registry processes deciding conflicting creations of one name at the same moment: JetStream's
// expected last subject sequence lets one event in; the other replica decides again on what is
// stored and refuses its command as a precise conflict. The stream never holds two creations of a name.
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

test("conflicting creations of one name on two registry processes: exactly one stored, the other 409 already_exists", { timeout: 60_000 }, async () => {
  const rounds = 25;
  const statuses: number[][] = [];
  for (let i = 0; i < rounds; i++) {
    const name = `raced-${i}`;
    const answers = await Promise.all(admins.map((admin, r) => admin.post("/v1/consumers", { name, description: `from ${r}` })));
    statuses.push(answers.map((a) => a.status).sort());
    for (const a of answers) if (a.status === 409) expect(a.body.error?.code).toBe("already_exists");
  }
  for (const s of statuses) expect(s).toEqual([201, 409]);

  const created = (await registryEvents<{ type: string; data: { name: string; description?: string } }>(nats)).filter((e) => e.type === EventType.consumerCreated).map((e) => e.data);
  expect(created.length).toBe(rounds);
  expect(new Set(created.map((c) => c.name)).size).toBe(rounds);
  // Both replicas show the stored definition.
  for (const c of created) {
    for (const admin of admins) expect((await admin.get(`/v1/consumers/${c.name}`)).body.description).toBe(c.description);
  }
  const wins = created.filter((c) => c.description === "from 0").length;
  console.info(`registryRaces: ${rounds} rounds, replica a won ${wins}, b won ${rounds - wins}`);
});
