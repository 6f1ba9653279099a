import { describe, expect, test } from "vitest";
import { busPermissions, KvBucket } from "./busPermissions.js";
import { RegistryStream, Subjects } from "./subjects.js";

describe("a connector's identity limited to some upstreams", () => {
  const limited = busPermissions("connector", { upstreams: ["a"] });

  // Reported on one subject for every upstream, a connector limited to `a` could add tools to
  // `b`'s list: new tools are compatible drift, adopted where a virtual server's policy allows.
  test("reports tool lists for its upstreams only", () => {
    expect(limited.publish).toContain(Subjects.registryDiscovered("a"));
    expect(limited.publish.filter((s) => s.startsWith("manifold.rpc.registry."))).toEqual([Subjects.registryDiscovered("a")]);
    expect(busPermissions("connector").publish).toContain(Subjects.registryDiscovered("*"));
    expect(busPermissions("registry").subscribe).toContain(Subjects.registryDiscovered("*"));
  });

  test("serves, reports health for and hears of its upstreams only", () => {
    for (const subjects of [limited.publish, limited.subscribe]) {
      expect(subjects.filter((s) => /\.upstream\.[^.]+\./.test(s) && !s.includes(".upstream.a."))).toEqual([]);
    }
  });
});

describe("the registry stream's readers", () => {
  // Under `$JS.API.CONSUMER.CREATE.<stream>.>` one connector group's identity made 20,000 consumers
  // on the registry stream (nats-server 18 → 739 MiB), and one with max_waiting 1e9 took +490 MiB.
  test("a gateway's or connector's identity may create, pull from or delete no JetStream consumer", () => {
    for (const permissions of [busPermissions("gateway"), busPermissions("connector"), busPermissions("connector", { upstreams: ["a"] })]) {
      expect(permissions.publish.filter((s) => s.startsWith("$JS.API.CONSUMER.") || s.startsWith("$JS.API.DIRECT.GET.MANIFOLD_"))).toEqual([]);
      expect(permissions.publish).toContain(`$JS.API.STREAM.MSG.GET.${RegistryStream.name}`);
      expect(permissions.subscribe).toContain(Subjects.registryAppended);
    }
  });

  // An announcement's event is applied as it comes: whoever may publish one writes the registry.
  test("only the registry may announce an append", () => {
    expect(busPermissions("registry").publish).toContain(Subjects.registryAppended);
    for (const role of ["gateway", "connector"] as const) expect(busPermissions(role).publish).not.toContain(Subjects.registryAppended);
    for (const role of ["gateway", "connector"] as const) expect(busPermissions(role).publish.filter((s) => s.startsWith("manifold.registry") || s === ">" || s === "manifold.>")).toEqual([]);
  });
});

describe("who makes streams", () => {
  // Whoever creates a stream picks where what it captures goes: a gateway's identity made
  // KV_manifold-rate republish its writes into MANIFOLD_REGISTRY (helper-193, kvBuckets.int).
  test("only the registry may create a stream, the gateways' KV buckets included", () => {
    for (const role of ["gateway", "connector"] as const) expect(busPermissions(role).publish.filter((s) => s.startsWith("$JS.API.STREAM.CREATE.") || s.startsWith("$JS.API.STREAM.UPDATE."))).toEqual([]);
    const registry = busPermissions("registry").publish;
    for (const bucket of Object.values(KvBucket)) expect(registry).toContain(`$JS.API.STREAM.CREATE.KV_${bucket}`);
    expect(registry.filter((s) => s.startsWith("$KV."))).toEqual([]);
  });
});
