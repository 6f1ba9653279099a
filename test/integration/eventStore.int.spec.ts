import { EventStore, followRegistry, type NatsConnection } from "@manifold/bus";
import { Worker } from "node:worker_threads";
import { busEnv, connectAs } from "../helpers/stack.js";
import { EventType, ManifoldError, RegistryStream, Subjects, type NewEvent } from "@manifold/contracts";
import { CatalogProjection } from "@manifold/domain";
import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterEach, beforeEach, describe, expect, test } from "vitest";

const logger = createLogger({ component: "test", level: "silent" });
const registered = (name: string, url = "http://a.example/mcp"): NewEvent => ({
  type: EventType.upstreamRegistered,
  version: 1,
  data: { name, transport: { type: "streamable-http", url, headers: {}, secretHeaders: {} }, options: {} },
});

describe("the registry event store on a real nats-server", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let store: EventStore;

  beforeEach(async () => {
    nats = await startNatsServer();
    nc = await connectAs(nats, "registry", "test");
    store = await EventStore.open(nc);
  });
  afterEach(async () => {
    await nc.close();
    await nats.stop();
  });

  const messageCount = async () => (await (await jetstreamManager(nc)).streams.info(RegistryStream.name)).state.messages;

  test("appends with the expected version and rejects a stale one naming the current version", async () => {
    const subject = Subjects.upstreamEvents("a");
    const first = await store.append(subject, registered("a"), { expectedVersion: 0, commandId: "one" });
    expect(first).toBe(1);
    const stale = await store
      .append(subject, registered("a", "http://b.example/mcp"), { expectedVersion: 0, commandId: "two" })
      .catch((e: unknown) => e);
    expect(stale).toBeInstanceOf(ManifoldError);
    expect((stale as ManifoldError).code).toBe("version_conflict");
    expect((stale as ManifoldError).data).toEqual({ expectedVersion: 0, currentVersion: 1 });
    expect(await store.version(subject)).toBe(1);
  });

  test("an event no node could read is refused before it is stored: nothing is appended and the version stays", async () => {
    const subject = Subjects.upstreamEvents("a");
    await store.append(subject, registered("a"), { expectedVersion: 0, commandId: "one" });
    const unreadable = { ...registered("a"), data: { name: "a", transport: { type: "streamable-http", url: "not a url" }, options: {} } } as NewEvent;
    const refused = await store.append(subject, unreadable, { expectedVersion: 1, commandId: "two" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ManifoldError);
    expect(refused).toMatchObject({ code: "internal_error" });
    expect((refused as Error).message).toContain("would not be readable");
    expect((refused as Error).message).not.toContain("not a url");
    expect(await messageCount()).toBe(1);
    expect(await store.version(subject)).toBe(1);
  });

  test("versions are per aggregate: writing one upstream does not conflict with another", async () => {
    await store.append(Subjects.upstreamEvents("a"), registered("a"), { expectedVersion: 0, commandId: "a" });
    const b = await store.append(Subjects.upstreamEvents("b"), registered("b"), { expectedVersion: 0, commandId: "b" });
    expect(b).toBe(2);
  });

  test("a retried append with the same msgID is stored once", async () => {
    const subject = Subjects.upstreamEvents("a");
    const first = await store.append(subject, registered("a"), { expectedVersion: 0, commandId: "same" });
    const retry = await store.append(subject, registered("a"), { expectedVersion: 0, commandId: "same" });
    expect(retry).toBe(first);
    expect(await messageCount()).toBe(1);
  });

  test("of two concurrent writers expecting the same version, exactly one wins", async () => {
    const subject = Subjects.upstreamEvents("a");
    const results = await Promise.allSettled(
      ["w1", "w2", "w3"].map((id) => store.append(subject, registered("a", `http://${id}.example/`), { expectedVersion: 0, commandId: id })),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(rejected.map((r) => (r.reason as ManifoldError).code)).toEqual(["version_conflict", "version_conflict"]);
  });

  test("a follower replays history, then applies new events live", async () => {
    await store.append(Subjects.upstreamEvents("a"), registered("a"), { expectedVersion: 0, commandId: "a" });
    const projection = new CatalogProjection();
    const follower = await followRegistry(nc, projection, logger);
    await follower.caughtUp;
    expect(projection.upstream("a")?.version).toBe(1);
    const seq = await store.append(Subjects.upstreamEvents("b"), registered("b"), { expectedVersion: 0, commandId: "b" });
    await follower.waitFor(seq);
    expect(projection.upstream("b")?.version).toBe(2);
    await follower.stop();
  });

  test("an event larger than a bus message is refused as payload_too_large, naming its size: not 'bus unavailable, retry'", async () => {
    const huge = { ...registered("huge"), data: { ...registered("huge").data, description: "x".repeat(1024 * 1024) } } as NewEvent;
    const refused = await store.append(Subjects.upstreamEvents("huge"), huge, { expectedVersion: 0, commandId: "huge" }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ManifoldError);
    expect((refused as ManifoldError).code).toBe("payload_too_large");
    expect((refused as ManifoldError).message).toMatch(/the 'upstream\.registered' event for .* is \d+ bytes, more than the message bus carries/);
    expect(await messageCount()).toBe(0);
  });

  test("attack: a history of events near the largest message replays on a busy node, without the server cutting it off as a slow consumer", async () => {
    // A hostile upstream's list-change storm appended ~800 KB events; a booting node pulled 100
    // at a time (80 MB, past nats-server's 64 MiB per client) while busy applying them, was cut
    // off, re-subscribed at the same place and was cut off again: no node could start.
    const big = "x".repeat(900 * 1024);
    for (let i = 0; i < 100; i++) {
      await store.append(Subjects.upstreamEvents(`u${i}`), { ...registered(`u${i}`), data: { ...registered(`u${i}`).data, description: big } } as NewEvent, { expectedVersion: 0, commandId: `u${i}` });
    }
    const projection = new CatalogProjection();
    const warnings: string[] = [];
    const watching = createLogger({ component: "follower", level: "warn", destination: { write: (line: string) => void warnings.push(line) } });
    // A node busy with what it applies, as one is while it boots: 20 ms per event.
    const busy = { get sequence() { return projection.sequence; }, apply: (event: Parameters<CatalogProjection["apply"]>[0], sequence: number) => {
      for (const until = performance.now() + 20; performance.now() < until; );
      projection.apply(event, sequence);
    }, skip: (sequence: number) => projection.skip(sequence) };
    const follower = await followRegistry(nc, busy, watching);
    await Promise.race([follower.caughtUp, new Promise((_, reject) => setTimeout(() => reject(new Error(`not caught up: ${projection.sequence} of 100 applied`)), 30_000))]);
    expect(projection.sequence).toBe(100);
    expect(warnings.filter((line) => line.includes("re-subscribing"))).toEqual([]);
    await follower.stop();
  }, 60_000);

  test("catchUp returns once every event appended before it is applied, and answers from what it has when NATS is gone", async () => {
    const projection = new CatalogProjection();
    const follower = await followRegistry(nc, projection, logger);
    await follower.caughtUp;
    const writer = await connectAs(nats, "registry", "writer");
    const writerStore = await EventStore.open(writer);
    const names = Array.from({ length: 200 }, (_, i) => `u${i}`);
    const sequences = await Promise.all(
      names.map((name) => writerStore.append(Subjects.upstreamEvents(name), registered(name), { expectedVersion: 0, commandId: name })),
    );
    await Promise.all([follower.catchUp(), follower.catchUp(), follower.catchUp()]);
    expect(projection.sequence).toBeGreaterThanOrEqual(Math.max(...sequences));
    for (const name of names) expect(projection.upstream(name)).toBeDefined();
    await writer.close();

    await nats.stop();
    const startedAt = performance.now();
    await follower.catchUp();
    expect(performance.now() - startedAt).toBeLessThan(2_000);
    expect(projection.upstream("u199")).toBeDefined();
    await follower.stop();
  });

  test("a wait whose timer fires late, after the process stalled, still sees the event that arrived meanwhile", async () => {
    const projection = new CatalogProjection();
    const follower = await followRegistry(nc, projection, logger);
    await follower.caughtUp;
    // Another thread appends while this one is stalled past the wait's bound, so the event
    // sits unread in the follower's socket when the wait's timer fires.
    const writer = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
      (async () => {
        const bus = await import(workerData.bus);
        const contracts = await import(workerData.contracts);
        const { createLogger } = await import(workerData.telemetry);
        const logger = createLogger({ component: "writer", level: "silent" });
        const nc = await bus.connectBus({ ...bus.busOptionsOf(contracts.parseEnv(contracts.BusEnv, workerData.env)), role: "registry", name: "writer", logger });
        const store = await bus.EventStore.open(nc);
        parentPort.postMessage("ready");
        await new Promise((resolve) => setTimeout(resolve, 100));
        await store.append(contracts.Subjects.upstreamEvents("late"), workerData.event, { expectedVersion: 0, commandId: "late" });
        await nc.close();
        parentPort.postMessage("appended");
      })();`,
      {
        eval: true,
        workerData: {
          bus: import.meta.resolve("@manifold/bus"),
          contracts: import.meta.resolve("@manifold/contracts"),
          telemetry: import.meta.resolve("@manifold/telemetry"),
          env: busEnv(nats, "registry"),
          event: registered("late"),
        },
      },
    );
    const appended = new Promise((resolve) => writer.on("message", (m) => m === "appended" && resolve(m)));
    await new Promise((resolve) => writer.once("message", resolve));
    const waited = follower.waitFor(projection.sequence + 1, 50).then(
      () => "applied",
      (error: ManifoldError) => error.code,
    );
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
    expect(await waited).toBe("applied");
    await appended;
    await writer.terminate();
    await follower.stop();
  });

  test("events survive a restart of nats-server itself (file storage)", async () => {
    const persistent = await startNatsServer();
    const storeDir = persistent.storeDir;
    const port = persistent.port;
    const first = await connectAs(persistent, "registry", "test");
    await (await EventStore.open(first)).append(Subjects.upstreamEvents("a"), registered("a"), { expectedVersion: 0, commandId: "a" });
    await first.close();
    persistent.process.kill("SIGKILL");
    await new Promise((r) => persistent.process.once("exit", r));

    await using again = await startNatsServer({ storeDir, port });
    const second = await connectAs(again, "registry", "test");
    const projection = new CatalogProjection();
    const follower = await followRegistry(second, projection, logger);
    await follower.caughtUp;
    expect(projection.upstream("a")?.name).toBe("a");
    await follower.stop();
    await second.close();
    await persistent.stop();
  });
});
