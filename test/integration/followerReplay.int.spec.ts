import { EventStore, followRegistry } from "@manifold/bus";
import { EventType, Subjects, type NewEvent } from "@manifold/contracts";
import { CatalogProjection } from "@manifold/domain";
import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { afterAll, beforeAll, expect, test } from "vitest";
import { connectAs } from "../helpers/stack.js";

// fault review (helper-123): a node restarting on a long registry log waited mostly on nats-server.
// Every role may answer requests it receives (`allow_responses`), so nats-server 2.9 records the
// reply subject of every message it delivers to it, a JetStream delivery's ack subject included,
// and rescans that record at each delivery past 4,096 (nats-io/nats-server#6058): a registry
// restarting on 50,000 events answered its first command after 21.6–27.4 s, 20,000 after 4.1–5.0 s.

const EVENTS = 30_000;
const logger = createLogger({ component: "test", level: "silent" });
let nats: NatsServer;

beforeAll(async () => {
  nats = await startNatsServer();
  const registry = await connectAs(nats, "registry", "writer");
  const store = await EventStore.open(registry);
  const registered = (name: string): NewEvent => ({ type: EventType.upstreamRegistered, version: 1, data: { name, transport: { type: "streamable-http", url: "http://a.example/mcp", headers: {}, secretHeaders: {} }, options: {} } });
  for (let from = 0; from < EVENTS; from += 500) {
    await Promise.all(Array.from({ length: 500 }, (_, i) => store.append(Subjects.upstreamEvents(`u${from + i}`), registered(`u${from + i}`), { expectedVersion: 0, commandId: `c${from + i}` })));
  }
  await registry.close();
}, 120_000);

afterAll(async () => {
  await nats?.stop();
});

test.each(["gateway", "connector", "registry"] as const)("a %s replays a 30,000-event registry log in seconds, as a role that may answer requests", async (role) => {
  const nc = await connectAs(nats, role, `replay-${role}`);
  const projection = new CatalogProjection();
  const started = performance.now();
  const follower = await followRegistry(nc, projection, logger);
  await follower.caughtUp;
  const ms = performance.now() - started;
  console.log(JSON.stringify({ role, events: EVENTS, ms: Math.round(ms) }));
  expect(projection.sequence).toBe(EVENTS);
  // Before: 9–15 s here (quadratic in the log's length past 4,096); now about a second.
  expect(ms).toBeLessThan(6_000);
  await follower.stop();
  await nc.close();
}, 60_000);
