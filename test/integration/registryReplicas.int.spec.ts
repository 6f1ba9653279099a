import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { listAll, wholeVirtualServer } from "../helpers/admin.js";
import { eventually } from "../helpers/mcp.js";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

// attack (race, two replicas): registryRaces.int appends the other replica's event by hand, at one
// chosen moment. Here two real registry replicas share one stream and take conflicting commands at
// the same time, each through its own admin API, many times over, and what they store together
// must still hold what each check promises alone.

let nats: NatsServer;
let a: RegistryOnly;
let b: RegistryOnly;

beforeAll(async () => {
  nats = await startNats();
  [a, b] = await Promise.all([startRegistry(nats.url), startRegistry(nats.url)]);
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  await nats?.stop();
});

/** Both replicas have applied everything in the stream (each follows it). */
const settled = () =>
  eventually(async () => {
    const [x, y] = [a.registry.projection.sequence, b.registry.projection.sequence];
    return x === y && x > 0 ? x : undefined;
  }, 10_000);

test("grants and deletions of their consumers, racing on two replicas, leave no grant naming a deleted consumer", async () => {
  expect((await a.admin.post("/v1/virtual-servers", { name: "vs", tools: [] })).status).toBe(201);
  const names = Array.from({ length: 12 }, (_, i) => `racer-${i}`);
  for (const name of names) expect((await a.admin.post("/v1/consumers", { name })).status).toBe(201);
  await settled();

  const outcomes = await Promise.all(
    names.map(async (name) => {
      const [grant, deletion] = await Promise.all([
        a.admin.post("/v1/virtual-servers/vs/grants", { grantId: name, subject: { consumer: name } }),
        b.admin.delete(`/v1/consumers/${name}`),
      ]);
      return { name, grant: grant.status, code: grant.body?.error?.code as string | undefined, deletion: deletion.status };
    }),
  );
  await settled();

  // Every deletion went through; a grant was stored before it (and revoked with it) or refused after
  // it. Neither named a version (If-Match), so neither is refused as a conflict with the other.
  for (const outcome of outcomes) {
    expect(outcome.deletion, JSON.stringify(outcome)).toBe(204);
    expect([201, 404], JSON.stringify(outcome)).toContain(outcome.grant);
    if (outcome.grant === 404) expect(outcome.code).toBe("not_found");
  }
  for (const replica of [a, b]) {
    const vs = (await wholeVirtualServer(replica.admin, "vs")) as { grants: { grantId: string }[] };
    expect(vs.grants).toEqual([]);
    const consumers = { items: await listAll<{ name: string }>(replica.admin, "/v1/consumers") };
    expect(consumers.items.filter((c) => names.includes(c.name))).toEqual([]);
  }
  // A consumer given a deleted one's name starts with no grant.
  expect((await b.admin.post("/v1/consumers", { name: names[0] })).status).toBe(201);
  await settled();
  expect(((await wholeVirtualServer(a.admin, "vs")) as { grants: unknown[] }).grants).toEqual([]);
});

test("two identity providers with one issuer, registered on two replicas at once: one is stored, the other refused", async () => {
  for (let round = 0; round < 8; round++) {
    const issuer = `https://idp-${round}.example.test`;
    const provider = (name: string) => ({ name, issuer, audience: "manifold", jwksUrl: `${issuer}/jwks` });
    const [first, second] = await Promise.all([a.admin.post("/v1/identity-providers", provider(`p${round}a`)), b.admin.post("/v1/identity-providers", provider(`p${round}b`))]);
    expect([first.status, second.status].sort(), JSON.stringify([first.body, second.body])).toEqual([201, 409]);
    expect([first, second].find((r) => r.status === 409)!.body.error.code).toBe("already_exists");
  }
  await settled();
  for (const replica of [a, b]) {
    const { items } = (await replica.admin.get("/v1/identity-providers")).body as { items: { issuer: string }[] };
    const issuers = items.map((p) => p.issuer).filter((i) => i.endsWith(".example.test"));
    expect(issuers).toHaveLength(8);
    expect(new Set(issuers).size).toBe(8);
  }
});

test("unconditional changes to one virtual server on two replicas at once are all stored; a conditional one on a stale version is refused", async () => {
  expect((await a.admin.post("/v1/virtual-servers", { name: "shared-vs", tools: [] })).status).toBe(201);
  expect((await a.admin.post("/v1/consumers", { name: "shared" })).status).toBe(201);
  await settled();
  const grant = (replica: RegistryOnly, grantId: string, headers?: Record<string, string>) =>
    replica.admin.post("/v1/virtual-servers/shared-vs/grants", { grantId, subject: { consumer: "shared" } }, headers);
  const ids = Array.from({ length: 8 }, (_, round) => [`ga${round}`, `gb${round}`]).flat();
  const results = await Promise.all(ids.map((id, i) => grant(i % 2 === 0 ? a : b, id)));
  for (const result of results) expect(result.status, JSON.stringify(result.body)).toBe(201);
  await settled();
  for (const replica of [a, b]) {
    const vs = (await wholeVirtualServer(replica.admin, "shared-vs")) as { grants: { grantId: string }[] };
    expect(vs.grants.map((g) => g.grantId).sort()).toEqual([...ids].sort());
  }
  // If-Match names the version its caller read: a change made since (on the other replica) refuses it.
  const read = await a.admin.get("/v1/virtual-servers/shared-vs");
  expect((await grant(b, "moved")).status).toBe(201);
  const stale = await grant(a, "stale", { "if-match": String(read.headers.get("etag")) });
  expect(stale.status).toBe(409);
  expect(stale.body.error.code).toBe("version_conflict");
});
