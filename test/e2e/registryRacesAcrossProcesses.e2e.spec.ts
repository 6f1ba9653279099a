import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { EventType, RegistryStream } from "@manifold/contracts";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, expect, test } from "vitest";
import { AdminClient } from "../helpers/admin.js";
import { ADMIN_TOKEN, busEnv, connectAs, startNats } from "../helpers/stack.js";

// Two registry processes deciding conflicting creations of one name at the same moment: JetStream's
// expected last subject sequence lets one event in; the other replica decides again on what is
// stored and refuses its command as a precise conflict. The stream never holds two creations of a name.
let nats: NatsServer;
const registries: ServiceProcess[] = [];
const admins: AdminClient[] = [];

beforeAll(async () => {
  nats = await startNats();
  for (const id of ["a", "b"]) {
    const port = await freePort();
    const registry = spawnService(`registry-${id}`, serviceEntry("registry"), [], {
      ...busEnv(nats, "registry"),
      MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
      REGISTRY_PORT: String(port),
      REGISTRY_METRICS_PORT: String(await freePort()),
      LOG_LEVEL: "warn",
    });
    registries.push(registry);
    await registry.ready(`http://127.0.0.1:${port}/readyz`);
    admins.push(new AdminClient(`http://127.0.0.1:${port}`, ADMIN_TOKEN));
  }
});

afterAll(async () => {
  await Promise.all(registries.map((r) => r.stop()));
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

  const nc = await connectAs(nats, "registry", "probe");
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(RegistryStream.name)).state.last_seq;
    const created: { name: string; description?: string }[] = [];
    for (let seq = 1; seq <= last; seq++) {
      const event = (await jsm.streams.getMessage(RegistryStream.name, { seq }).catch(() => undefined))?.json<{ type: string; data: { name: string; description?: string } }>();
      if (event?.type === EventType.consumerCreated) created.push(event.data);
    }
    expect(created.length).toBe(rounds);
    expect(new Set(created.map((c) => c.name)).size).toBe(rounds);
    // Both replicas show the stored definition.
    for (const c of created) {
      for (const admin of admins) expect((await admin.get(`/v1/consumers/${c.name}`)).body.description).toBe(c.description);
    }
    const wins = created.filter((c) => c.description === "from 0").length;
    console.info(`registryRaces: ${rounds} rounds, replica a won ${wins}, b won ${rounds - wins}`);
  } finally {
    await nc.close();
  }
});
