import { jetstream } from "@nats-io/jetstream";
import { expect, test } from "vitest";
import { useRegistryOnly } from "../helpers/registryOnly.js";
import { connectAs } from "../helpers/stack.js";

// Records reach the audit stream in the order gateways publish them, each stamped by its own
// gateway's clock, after its answer, batched for up to 20 ms: with two replicas, a record stamped
// after a query's `until` can be stored before one stamped before it.

const r = useRegistryOnly();

test("attack: a query up to a time returns the records stamped before it that were stored after a later-stamped one", async () => {
  const gateway = await connectAs(r.nats, "gateway");
  const js = jetstream(gateway);
  const record = (consumer: string, at: number) =>
    JSON.stringify({ at: new Date(at).toISOString(), consumer, virtualServer: "vs", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 });
  const until = Date.now();
  // Replica A's clock runs 300 ms ahead; replica B's call, 100 ms before `until`, reaches the stream after A's.
  await js.publish("manifold.audit.vs", record("consumer:a", until + 200));
  await js.publish("manifold.audit.vs", record("consumer:b", until - 100));
  await gateway.close();
  const res = await r.admin.get(`/v1/audit?until=${new Date(until).toISOString()}`);
  expect(res.status).toBe(200);
  // Before: none, and no `next`: the read stopped at A's record, as if the window held nothing more.
  expect(res.body.items.map((i: { consumer: string }) => i.consumer)).toEqual(["consumer:b"]);
});

test("a query up to the last representable second reads on: the slack never wraps past year 9999", async () => {
  const res = await r.admin.get(`/v1/audit?until=9999-12-31T23:59:59Z`);
  expect(res.status).toBe(200);
  expect(res.body.items.map((i: { consumer: string }) => i.consumer)).toEqual(["consumer:a", "consumer:b"]);
});

test("attack: a query since a time returns a record stamped after it by a replica whose clock runs ahead of the bus's", async () => {
  const gateway = await connectAs(r.nats, "gateway");
  const js = jetstream(gateway);
  // Replica C's clock runs 2 s ahead of the bus's: its record, stamped after `since`, is stored before it.
  const since = Date.now() + 1_000;
  const at = new Date(since + 1_000).toISOString();
  await js.publish("manifold.audit.vs", JSON.stringify({ at, consumer: "consumer:c", virtualServer: "vs", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 }));
  await gateway.close();
  const res = await r.admin.get(`/v1/audit?since=${new Date(since).toISOString()}`);
  expect(res.status).toBe(200);
  // Before: none: the stream started the read at `since` by its own clock, after the record was stored.
  expect(res.body.items.map((i: { consumer: string }) => i.consumer)).toEqual(["consumer:c"]);
});
