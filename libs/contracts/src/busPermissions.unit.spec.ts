import { describe, expect, test } from "vitest";
import { busPermissions } from "./busPermissions.js";
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
