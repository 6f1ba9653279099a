import { RegistryLimits } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRegistry, type RegistryOnly } from "../helpers/registryOnly.js";
import { startNats } from "../helpers/stack.js";

// Every node folds every event on boot, and an event that adds one key or one grant copies its
// consumer's or virtual server's map: a consumer given a key per CI job (never revoked) made that
// fold quadratic. 20,000 keys held each node's event loop 53 s at boot, 40,000 keys 245 s (the
// evolve alone, measured). The registry now holds at most so many of each thing, the rest refused
// with 409 `limit_reached`, naming the limit; removing one makes room again.
describe("the registry holds a bounded number of each thing", () => {
  let nats: NatsServer;
  let r: RegistryOnly;

  beforeAll(async () => {
    nats = await startNats();
    // These tests send a thousand commands back to back: on a fast machine that is past the
    // per-admin rate (500 a second), which is `adminBudget`'s to test, not this file's.
    r = await startRegistry(nats.url, { REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN: "100000" });
    expect((await r.admin.post("/v1/consumers", { name: "ci" })).status).toBe(201);
    expect((await r.admin.post("/v1/virtual-servers", { name: "shared", tools: [] })).status).toBe(201);
  });
  afterAll(async () => {
    await r?.close();
    await nats?.stop();
  });

  test(`a consumer holds at most ${RegistryLimits.keysPerConsumer} keys: the next is refused until one is revoked`, async () => {
    const issued: string[] = [];
    for (let i = 0; i < RegistryLimits.keysPerConsumer; i++) {
      const res = await r.admin.post("/v1/consumers/ci/keys", {});
      expect(res.status).toBe(201);
      issued.push(res.body.keyId);
    }
    const refused = await r.admin.post("/v1/consumers/ci/keys", {});
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: { code: "limit_reached", data: { limit: RegistryLimits.keysPerConsumer } } });
    expect(refused.body.error.message).toContain("revoke");
    expect((await r.admin.delete(`/v1/consumers/ci/keys/${issued[0]}`)).status).toBe(204);
    expect((await r.admin.post("/v1/consumers/ci/keys", {})).status).toBe(201);
    expect(r.registry.projection.consumer("ci")?.keys.size).toBe(RegistryLimits.keysPerConsumer);
  });

  test(`a virtual server holds at most ${RegistryLimits.grantsPerVirtualServer} grants`, async () => {
    for (let i = 0; i < RegistryLimits.grantsPerVirtualServer; i++) {
      const res = await r.admin.post("/v1/virtual-servers/shared/grants", { grantId: `g${i}`, subject: { group: `team-${i}` } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
    const refused = await r.admin.post("/v1/virtual-servers/shared/grants", { grantId: "one-more", subject: { group: "late" } });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ error: { code: "limit_reached", data: { limit: RegistryLimits.grantsPerVirtualServer } } });
    // Repeating a grant it holds is still the no-op it always was.
    expect((await r.admin.post("/v1/virtual-servers/shared/grants", { grantId: "g0", subject: { group: "team-0" } })).status).toBeLessThan(300);
  });

  // A selection's references were unbounded but for the 1 MiB body: ~30,000 were decided (and named
  // back, each, in a 319 KB refusal) before anything said the virtual server holds 10,000 at most.
  test(`a selection or deselection names at most ${RegistryLimits.itemsPerVirtualServer} tools; a refusal names the first few it does not know`, async () => {
    const many = RegistryLimits.itemsPerVirtualServer + 1;
    const refs = Array.from({ length: many }, (_, i) => ({ upstream: "u", tool: `t${i}` }));
    const names = Array.from({ length: many }, (_, i) => `t${i}`);
    for (const [path, body] of [
      ["/v1/virtual-servers", { name: "wide", tools: refs }],
      ["/v1/virtual-servers/shared/tools", { tools: refs }],
      ["/v1/virtual-servers/shared/tools/remove", { exposedNames: names }],
    ] as const) {
      const res = await r.admin.post(path, body);
      expect(res.status, path).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
    const unknown = await r.admin.post("/v1/virtual-servers/shared/tools/remove", { exposedNames: names.slice(1) });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: "not_found", data: { missing: many - 1 } });
    expect(unknown.body.error.message.length).toBeLessThan(300);
  });
});
