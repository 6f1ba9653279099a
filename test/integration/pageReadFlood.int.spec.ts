import { AuditStream, RegistryStream } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, expect, test } from "vitest";
import { AdminClient, TWO_ADMINS } from "../helpers/admin.js";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { connectAs, startNats } from "../helpers/stack.js";

// Every audit or history page is read through a JetStream consumer of its own, with no bound on
// how many ran at once, and nats.js leaves each on the server for 5 minutes after the read. One
// admin's 200 reads in a loop held 735 consumers on the audit stream within 1.5 s and put another
// admin's commands at p50 436 ms, max 2.6 s (4 ms alone).

const { bob: BOB, eve: EVE } = TWO_ADMINS;
let nats: NatsServer;
let r: RegistryOnly;

beforeAll(async () => {
  nats = await startNats();
  r = await startRegistry(nats.url, TWO_ADMINS.env);
  const gateway = await connectAs(nats, "gateway");
  const js = jetstream(gateway);
  const record = JSON.stringify({ at: new Date().toISOString(), consumer: "consumer:a", virtualServer: "vs", environment: "default", exposedTool: "t", tool: "t", upstream: "u", durationMs: 1, outcome: "ok", argumentBytes: 0, resultBytes: 0 });
  for (let batch = 0; batch < 10; batch++) await Promise.all(Array.from({ length: 500 }, () => js.publish("manifold.audit.vs", record)));
  await gateway.close();
}, 60_000);
afterAll(async () => {
  await r?.close();
  await nats?.stop();
});

const read = (path: string) => fetch(`${r.admin.baseUrl}${path}`, { headers: { authorization: `Bearer ${EVE}` } });

test("attack: one admin's 200 page reads at once are bounded; another admin's commands stay fast and no consumer is left behind", async () => {
  const bob = new AdminClient(r.admin.baseUrl, BOB);
  const operator = await connectAs(nats, "operator");
  const jsm = await jetstreamManager(operator);
  const consumers = async () => (await jsm.streams.info(AuditStream.name)).state.consumer_count + (await jsm.streams.info(RegistryStream.name)).state.consumer_count;
  // The registry's own follower reads the registry stream for good.
  const before = await consumers();
  let flooding = true;
  const statuses: number[] = [];
  let retryAfter: string | null = null;
  // Refused by this bound (`too_many_reads`); the request budget (`rate_limited`) may refuse some too.
  const refusals = new Map<string, unknown>();
  const flood = Array.from({ length: 200 }, async (_, n) => {
    while (flooding) {
      // A filter matching nothing reads for its full 2 s; history pages are short.
      const res = await read(n % 2 ? "/v1/audit?consumer=nobody" : "/v1/virtual-servers/any/history");
      const body = await res.json();
      statuses.push(res.status);
      if (res.status !== 429) continue;
      retryAfter = res.headers.get("retry-after");
      refusals.set((body as { error: { code: string } }).error.code, body);
      // Not a hot loop of refusals: that is an HTTP flood like any other, bounded by
      // `REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN` (`adminRequestFlood.int`), not by this bound.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });
  let mostConsumers = 0;
  const sampler = setInterval(() => void consumers().then((n) => (mostConsumers = Math.max(mostConsumers, n)), () => undefined), 100);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const took: number[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    expect((await bob.post("/v1/virtual-servers", { name: `bob-${i}`, tools: [] })).status).toBe(201);
    took.push(performance.now() - started);
  }
  // Bob's own reads are his, not Eve's: answered while she floods.
  expect((await bob.get("/v1/audit?limit=10")).status).toBe(200);
  flooding = false;
  await Promise.all(flood);
  clearInterval(sampler);
  took.sort((a, b) => a - b);
  // Before: 265-436 ms; after, 5-22 ms (on a busy two-core machine; room left for a busier one).
  expect(took[10]).toBeLessThan(200);
  expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
  expect(retryAfter).toBe("1");
  expect(refusals.get("too_many_reads")).toMatchObject({ error: { code: "too_many_reads" } });
  expect(mostConsumers - before).toBeLessThanOrEqual(16);
  // Read, then deleted: none waits out nats.js's 5 minutes.
  expect(await consumers()).toBe(before);
  await operator.close();
});

test("every admin together: past REGISTRY_MAX_PAGE_READS a read is 503 at_capacity with Retry-After", async () => {
  const tokens = Array.from({ length: 6 }, (_, n) => `admin${n}-token-0123456789`);
  await using small = await startRegistry(nats.url, { MANIFOLD_ADMIN_TOKENS: tokens.map((t, n) => `a${n}=${t}`).join(","), REGISTRY_MAX_PAGE_READS: "4" });
  const answers = await Promise.all(
    tokens.flatMap((token) => [0, 1].map(() => fetch(`${small.admin.baseUrl}/v1/audit?consumer=nobody`, { headers: { authorization: `Bearer ${token}` } }))),
  );
  const refused = answers.filter((a) => a.status === 503);
  expect(answers.filter((a) => a.status === 200).length).toBe(4);
  expect(refused.length).toBe(8);
  expect(refused[0]!.headers.get("retry-after")).toBe("1");
  expect(await refused[0]!.json()).toMatchObject({ error: { code: "at_capacity" } });
});
