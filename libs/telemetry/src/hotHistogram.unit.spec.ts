import { Histogram, Registry } from "prom-client";
import { describe, expect, test } from "vitest";
import { HotHistogram } from "./hotHistogram.js";
import { DURATION_BUCKETS } from "./metrics.js";

const LABELS = ["virtual_server", "upstream", "outcome"] as const;
type Label = (typeof LABELS)[number];
const config = { name: "call_duration_seconds", help: "Calls.", labelNames: LABELS, buckets: DURATION_BUCKETS };

const pair = () => {
  const [hot, plain] = [new Registry(), new Registry()];
  for (const r of [hot, plain]) r.setDefaultLabels({ service: "gateway" });
  return { hot, plain, a: new HotHistogram<Label>({ ...config, registers: [hot] }), b: new Histogram<Label>({ ...config, labelNames: [...LABELS], registers: [plain] }) };
};

describe("a hot histogram", () => {
  test("reads as prom-client's own histogram given the same observations, byte for byte, at every scrape", async () => {
    const { hot, plain, a, b } = pair();
    const series: Record<Label, string>[] = [
      { virtual_server: "bench", upstream: "fast", outcome: "ok" },
      { virtual_server: "bench", upstream: "fast", outcome: "error" },
      // Values that a joined key could confuse: each is its own series.
      { virtual_server: "a\nb", upstream: "c", outcome: "ok" },
      { virtual_server: "a", upstream: "b\nc", outcome: "ok" },
      { virtual_server: 'q"uote', upstream: "t\\", outcome: "" },
    ];
    // On every bound, between bounds, below the first, above the last, zero and negative.
    const values = [...DURATION_BUCKETS, ...DURATION_BUCKETS.map((v) => v * 1.5), 0.0001, 0, -1, 61, 1e9, 0.1 + 0.2];
    for (let round = 0; round < 3; round++) {
      for (const [i, labels] of series.entries()) {
        for (const [k, value] of values.entries()) {
          if ((k + i + round) % 3 === 0) continue;
          a.observe({ ...labels }, value);
          b.observe(labels, value);
        }
      }
      expect(await hot.metrics()).toBe(await plain.metrics());
      expect(await hot.getMetricsAsJSON()).toEqual(await plain.getMetricsAsJSON());
    }
    expect(await hot.metrics()).toBe(await plain.metrics());
  });

  test("is forgotten with the registry's metrics, as prom-client's is", async () => {
    const { hot, plain, a, b } = pair();
    const labels = { virtual_server: "bench", upstream: "fast", outcome: "ok" };
    a.observe(labels, 0.003);
    b.observe(labels, 0.003);
    hot.resetMetrics();
    plain.resetMetrics();
    expect(await hot.metrics()).toBe(await plain.metrics());
    a.observe(labels, 0.2);
    b.observe(labels, 0.2);
    expect(await hot.metrics()).toBe(await plain.metrics());
  });

  test("refuses what prom-client refuses: a value that is not a finite number, a bad name, the label `le`", () => {
    const { a } = pair();
    expect(() => a.observe({ virtual_server: "v", upstream: "u", outcome: "ok" }, Number.NaN)).toThrow(TypeError);
    expect(() => a.observe({ virtual_server: "v", upstream: "u", outcome: "ok" }, Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(() => new HotHistogram({ ...config, name: "bad name", registers: [] })).toThrow();
    expect(() => new HotHistogram({ ...config, labelNames: ["le"], registers: [] })).toThrow();
    expect(() => new HotHistogram({ ...config, labelNames: [], registers: [] })).toThrow();
  });

  test("keeps its own copy of the labels it was first given", async () => {
    const registry = new Registry();
    const histogram = new HotHistogram<"upstream">({ name: "d_seconds", help: "D.", labelNames: ["upstream"], buckets: [1], registers: [registry] });
    const labels = { upstream: "fast" };
    histogram.observe(labels, 0.5);
    labels.upstream = "slow";
    expect(await registry.metrics()).toContain('d_seconds_bucket{le="1",upstream="fast"} 1');
  });
});
