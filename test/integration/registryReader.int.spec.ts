import { EventStore, followRegistry } from "@manifold/bus";
import { BusHeader, EventType, RegistryStream, Subjects, type NewEvent } from "@manifold/contracts";
import { CatalogProjection } from "@manifold/domain";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connectAs, startNats } from "../helpers/stack.js";

// Gateways and connectors follow the registry stream by message gets, told of each append by the
// registry (Subjects.registryAppended): no JetStream consumer, so none for an identity to hoard.
const logger = createLogger({ component: "test", level: "silent" });
let nats: NatsServer;
let store: EventStore;
let registry: NatsConnection;
const opened: NatsConnection[] = [];
const as = async (role: "gateway" | "connector" | "registry" | "operator", name: string) => {
  const nc = await connectAs(nats, role, name);
  opened.push(nc);
  return nc;
};
const registered = (name: string): NewEvent => ({ type: EventType.upstreamRegistered, version: 1, data: { name, transport: { type: "streamable-http", url: "http://a.example/mcp", headers: {}, secretHeaders: {} }, options: {} } });
const append = (name: string) => store.append(Subjects.upstreamEvents(name), registered(name), { expectedVersion: 0, commandId: `c-${name}` });
const follow = async (role: "gateway" | "connector") => {
  const projection = new CatalogProjection();
  const follower = await followRegistry(await as(role, `${role}-${opened.length}`), projection, logger);
  await follower.caughtUp;
  return { projection, follower };
};

beforeAll(async () => {
  nats = await startNats();
  registry = await as("registry", "writer");
  store = await EventStore.open(registry);
  for (let i = 0; i < 5; i++) await append(`u${i}`);
}, 60_000);

afterAll(async () => {
  await Promise.all(opened.map((nc) => nc.close().catch(() => undefined)));
  await nats?.stop();
});

describe("following the registry without a consumer", () => {
  test("an append is applied from its announcement, within milliseconds", async () => {
    const { projection, follower } = await follow("gateway");
    const at = performance.now();
    const sequence = await append("announced");
    await follower.waitFor(sequence, 1_000);
    const ms = performance.now() - at;
    console.log(`[measure] applied ${ms.toFixed(1)} ms after the append was acknowledged`);
    expect(projection.upstream("announced")).toBeDefined();
    expect(ms).toBeLessThan(500);
    await follower.stop();
  });

  test("an append nobody announced (a registry that died before saying so) is read within the probe", async () => {
    const { projection, follower } = await follow("connector");
    const at = performance.now();
    const ack = await jetstream(registry).publish(Subjects.upstreamEvents("silent"), JSON.stringify({ ...registered("silent"), meta: { commandId: "c-silent", at: new Date().toISOString() } }));
    await follower.waitFor(ack.seq, 5_000);
    console.log(`[measure] an unannounced append applied after ${(performance.now() - at).toFixed(0)} ms`);
    expect(projection.upstream("silent")).toBeDefined();
    expect(projection.sequence).toBe(ack.seq);
    await follower.stop();
  });

  test("an announcement out of turn makes the follower read what it missed, in order", async () => {
    const { projection, follower } = await follow("gateway");
    const first = await jetstream(registry).publish(Subjects.upstreamEvents("gap-1"), JSON.stringify({ ...registered("gap-1"), meta: { commandId: "c-gap-1", at: new Date().toISOString() } }));
    const second = await append("gap-2");
    expect(second).toBe(first.seq + 1);
    await follower.waitFor(second, 1_000);
    expect([projection.upstream("gap-1"), projection.upstream("gap-2")].every(Boolean)).toBe(true);
    await follower.stop();
  });

  test("an event the stream no longer holds is moved past, and the rest applied", async () => {
    const deleted = await append("deleted-one");
    const kept = await append("kept-one");
    await (await jetstreamManager(await as("operator", "ops"))).streams.deleteMessage(RegistryStream.name, deleted);
    const { projection, follower } = await follow("connector");
    expect(projection.sequence).toBeGreaterThanOrEqual(kept);
    expect(projection.upstream("deleted-one")).toBeUndefined();
    expect(projection.upstream("kept-one")).toBeDefined();
    await follower.stop();
  });

  test("attack: no identity but the registry's may announce, so nothing a gateway or connector says is applied", async () => {
    const { projection, follower } = await follow("gateway");
    const before = projection.sequence;
    for (const role of ["gateway", "connector"] as const) {
      const forger = await as(role, `forger-${role}`);
      const forged = headers();
      forged.set(BusHeader.sequence, String(before + 1));
      forger.publish(Subjects.registryAppended, JSON.stringify({ ...registered(`forged-${role}`), meta: { commandId: "x", at: new Date().toISOString() } }), { headers: forged });
      await forger.flush();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(projection.sequence).toBe(before);
    expect(projection.upstream("forged-gateway")).toBeUndefined();
    expect(projection.upstream("forged-connector")).toBeUndefined();
    await follower.stop();
  });
});
