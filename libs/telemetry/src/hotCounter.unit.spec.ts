import { Counter, Registry } from "prom-client";
import { describe, expect, test } from "vitest";
import { HotCounter } from "./hotCounter.js";

const LABELS = ["virtual_server", "tool", "consumer", "outcome"] as const;
type Label = (typeof LABELS)[number];

describe("a hot counter", () => {
  test("reads as prom-client's own counter given the same increments, at every scrape", async () => {
    const hot = new Registry();
    const plain = new Registry();
    for (const r of [hot, plain]) r.setDefaultLabels({ service: "gateway" });
    const a = new HotCounter<Label>({ name: "calls_total", help: "Calls.", labelNames: LABELS, registers: [hot] });
    const b = new Counter<Label>({ name: "calls_total", help: "Calls.", labelNames: LABELS, registers: [plain] });
    const incs: Record<Label, string>[] = [
      { virtual_server: "bench", tool: "fast__echo", consumer: "alice", outcome: "ok" },
      { virtual_server: "bench", tool: "fast__echo", consumer: "bob", outcome: "ok" },
      { virtual_server: "bench", tool: "(unknown)", consumer: "alice", outcome: "unknown_tool" },
      // Values that a joined key could confuse: each is its own series.
      { virtual_server: "a\nb", tool: "c", consumer: "d", outcome: "ok" },
      { virtual_server: "a", tool: "b\nc", consumer: "d", outcome: "ok" },
      { virtual_server: 'q"uote', tool: "t\\", consumer: "", outcome: "ok" },
    ];
    for (let round = 0; round < 3; round++) {
      for (const [i, labels] of incs.entries()) {
        for (let k = 0; k <= i + round; k++) {
          a.inc({ ...labels });
          b.inc(labels);
        }
      }
      expect(await hot.metrics()).toBe(await plain.metrics());
    }
    // Nothing new since the last scrape: the same text again.
    expect(await hot.metrics()).toBe(await plain.metrics());
  });

  test("keeps its own copy of the labels it was first given", async () => {
    const registry = new Registry();
    const counter = new HotCounter<"upstream">({ name: "c_total", help: "C.", labelNames: ["upstream"], registers: [registry] });
    const labels = { upstream: "fast" };
    counter.inc(labels);
    labels.upstream = "slow";
    expect(await registry.metrics()).toContain('c_total{upstream="fast"} 1');
  });
});
