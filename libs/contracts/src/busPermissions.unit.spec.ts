import { describe, expect, test } from "vitest";
import { busPermissions, FOLLOWER_SLOTS, followerName } from "./busPermissions.js";
import { Subjects } from "./subjects.js";

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

describe("stream consumers", () => {
  const consumerSubjects = (subjects: string[]) => subjects.filter((s) => s.startsWith("$JS.API.CONSUMER."));

  // Under a wildcard one connector group's identity created 20,000 consumers on the registry
  // stream (nats-server 18 → 739 MiB), and could pull from or delete a gateway's follower.
  test("a gateway or connector identity may hold only its own followers' names, a bounded number", () => {
    for (const [role, identity] of [["gateway", "gateway"], ["connector", "connector"], ["connector", "connector-billing"]] as const) {
      const subjects = consumerSubjects(busPermissions(role, { identity }).publish);
      expect(subjects.length).toBeGreaterThan(0);
      for (const subject of subjects) {
        expect(subject).not.toMatch(/[*>]/);
        const name = subject.split(".").at(-1);
        expect(Array.from({ length: FOLLOWER_SLOTS }, (_, i) => followerName(identity, i))).toContain(name);
      }
    }
  });

  test("one identity's names are not another's", () => {
    const names = (identity: string) => new Set(Array.from({ length: FOLLOWER_SLOTS }, (_, i) => followerName(identity, i)));
    const connector = names("connector");
    for (const other of ["connector-1", "connector-billing", "connector-billing-2"]) {
      expect([...names(other)].filter((n) => connector.has(n))).toEqual([]);
    }
    expect([...names("connector-billing")].filter((n) => names("connector-billing-2").has(n))).toEqual([]);
  });
});
