import { EventStore, type NatsConnection, type StreamFollower } from "@manifold/bus";
import { CommandType, EventType, RegistryEvent, RegistryStream, type RegistryCommand } from "@manifold/contracts";
import { CatalogProjection, subjectOf } from "@manifold/domain";
import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { IdempotencyIndex, createCommandHandler } from "@manifold/registry";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterEach, beforeEach, expect, test } from "vitest";
import { connectAs } from "../helpers/stack.js";

// attack (race): a registry decides a command against its projection, which may not yet hold what
// another replica (or another request) appended a moment before. Its append expected only the
// command's own object to be unchanged, so a grant decided while its consumer was being deleted
// elsewhere was stored naming the deleted consumer, and went to whoever was given the name next.
// Here the other replica's event is appended straight to the stream, and this registry's
// projection holds it only once the command handler asks its follower to catch up.

let nats: NatsServer;
let nc: NatsConnection;
let store: EventStore;
let projection: CatalogProjection;
let execute: ReturnType<typeof createCommandHandler>;

/** Applies what the stream holds past the projection, only when asked: the projection is as stale as the test leaves it. */
async function applyFromStream(): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const last = (await jsm.streams.info(RegistryStream.name)).state.last_seq;
  for (let seq = projection.sequence + 1; seq <= last; seq++) {
    const message = await jsm.streams.getMessage(RegistryStream.name, { seq });
    if (message) projection.apply(RegistryEvent.parse(message.json()), seq);
  }
}

beforeEach(async () => {
  nats = await startNatsServer();
  nc = await connectAs(nats, "registry", "races");
  store = await EventStore.open(nc);
  projection = new CatalogProjection();
  const keys = new IdempotencyIndex();
  projection.onApplied((event, sequence) => keys.record(event, sequence));
  const follower: StreamFollower = { caughtUp: Promise.resolve(), isCaughtUp: () => true, isReady: () => true, untilCaughtUp: async () => true, waitFor: applyFromStream, catchUp: applyFromStream, stop: async () => undefined };
  execute = createCommandHandler(projection, store, follower, keys);
  await execute({ type: CommandType.createVirtualServer, name: "vs", naming: { policy: "suffix", prefixes: {} }, tools: [], prompts: [], resources: [], driftPolicy: "pinned" } as RegistryCommand);
  await execute({ type: CommandType.createConsumer, name: "x", groups: [], identityProviders: [] } as RegistryCommand);
});

afterEach(async () => {
  await nc?.close();
  await nats?.stop();
});

/** Another replica's command, stored without this registry's projection hearing of it yet. */
const elsewhere = (event: Omit<RegistryEvent, "meta">, aggregate: Parameters<typeof subjectOf>[0]) =>
  store.append(subjectOf(aggregate), event as never, { expectedVersion: projection.versionOf(aggregate), commandId: `elsewhere-${Math.random()}` });

test("a grant decided while its consumer was being deleted elsewhere is decided again, and refused", async () => {
  await elsewhere({ type: EventType.consumerDeleted, version: 1, data: { name: "x" } } as never, { kind: "consumer", name: "x" });
  expect(projection.consumer("x")).toBeDefined();
  await expect(execute({ type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "x" }, deniedTools: [] } } as RegistryCommand)).rejects.toMatchObject({
    code: "not_found",
    message: "consumer 'x' does not exist",
  });
  expect(projection.consumer("x")).toBeUndefined();
  expect(projection.virtualServer("vs")!.grants.size).toBe(0);
});

test("a command whose own object is unchanged goes through once it has seen the rest of the registry", async () => {
  // Something else changed (another consumer created elsewhere): the grant still holds, decided again.
  await elsewhere({ type: EventType.consumerCreated, version: 1, data: { name: "y", groups: [], identityProviders: [] } } as never, { kind: "consumer", name: "y" });
  const result = await execute({ type: CommandType.grantAccess, name: "vs", grant: { grantId: "g", subject: { consumer: "x" }, deniedTools: [] } } as RegistryCommand);
  expect(result.changed).toBe(true);
  expect(projection.consumer("y")).toBeDefined();
  expect(projection.virtualServer("vs")!.grants.has("g")).toBe(true);
});

test("a change to the command's own object elsewhere: decided again without If-Match, refused with it", async () => {
  const vs = { kind: "virtual-server", name: "vs" } as const;
  const theirs = (grantId: string) => ({ type: EventType.virtualServerAccessGranted, version: 1, data: { name: "vs", grant: { grantId, subject: { consumer: "x" }, deniedTools: [] } } }) as never;
  const grant = (grantId: string, expectedVersion?: number) =>
    execute({ type: CommandType.grantAccess, name: "vs", grant: { grantId, subject: { consumer: "x" }, deniedTools: [] } } as RegistryCommand, expectedVersion === undefined ? {} : { expectedVersion });
  // Another replica's grant on the same virtual server, which this projection has not heard of.
  await elsewhere(theirs("theirs"), vs);
  expect((await grant("mine")).changed).toBe(true);
  expect([...projection.virtualServer("vs")!.grants.keys()].sort()).toEqual(["mine", "theirs"]);
  // With If-Match naming the version read before the other replica's change, it is refused.
  const read = projection.versionOf(vs);
  await elsewhere(theirs("theirs-too"), vs);
  await expect(grant("stale", read)).rejects.toMatchObject({ code: "version_conflict" });
  await applyFromStream();
  expect(projection.virtualServer("vs")!.grants.has("stale")).toBe(false);
});

test("commands wait their turn on a replica, and one that waited too long (or finds too many waiting) is refused, retryably, before it is decided", async () => {
  const slow: StreamFollower = { caughtUp: Promise.resolve(), isCaughtUp: () => true, isReady: () => true, untilCaughtUp: async () => true, waitFor: async () => (await new Promise((r) => setTimeout(r, 300)), applyFromStream()), catchUp: applyFromStream, stop: async () => undefined };
  const keys = new IdempotencyIndex();
  const limited = createCommandHandler(projection, store, slow, keys, { maxQueued: 3, maxWaitMs: 200 });
  const consumer = (name: string) => limited({ type: CommandType.createConsumer, name, groups: [], identityProviders: [] } as RegistryCommand);
  const outcomes = await Promise.allSettled([consumer("q1"), consumer("q2"), consumer("q3"), consumer("q4")]);
  expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected"]);
  expect(outcomes.slice(1).map((o) => (o as PromiseRejectedResult).reason.code)).toEqual(["bus_unavailable", "bus_unavailable", "bus_unavailable"]);
  expect((outcomes[1] as PromiseRejectedResult).reason.message).toContain("waited 200 ms");
  expect((outcomes[3] as PromiseRejectedResult).reason.message).toContain("3 commands are waiting");
  // Nothing refused was stored: the next command is decided on q1 alone.
  await applyFromStream();
  expect(["q1", "q2", "q3", "q4"].map((name) => projection.consumer(name) !== undefined)).toEqual([true, false, false, false]);
  expect((await consumer("q5")).changed).toBe(true);
});
