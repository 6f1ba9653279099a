import { observeProjection } from "@manifold/bus";
import type { NatsServer } from "@manifold/nats-server";
import { createMetricsRegistry } from "@manifold/telemetry";
import { afterAll, beforeAll, expect, test } from "vitest";
import { connectAs, startNats } from "../helpers/stack.js";

// The lag gauge reads the registry stream's end from JetStream when scraped: how often, whoever scrapes.

let nats: NatsServer;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await nats?.stop();
});

test("attack: while the stream cannot be read, scrapes do not each ask JetStream again: one failed lookup answers its second", async () => {
  // A bus without the registry stream: every lookup fails, as while JetStream is down or electing.
  const nc = await connectAs(nats, "operator", "metrics-node");
  const watcher = await connectAs(nats, "operator", "jetstream-watcher");
  try {
    let lookups = 0;
    watcher.subscribe("$JS.API.>", { callback: (_err, msg) => void (msg.subject.startsWith("$JS.API.STREAM.INFO.") && lookups++) });
    await watcher.flush();
    const registry = createMetricsRegistry("test");
    observeProjection(registry, nc, { sequence: 0, apply: () => undefined, skip: () => undefined, onApplied: () => undefined });
    const started = performance.now();
    // Before: a failed lookup was forgotten at once, so 50 scrapes in a row were 50 lookups.
    for (let i = 0; i < 50; i++) await expect(registry.metrics()).rejects.toThrow();
    const seconds = Math.ceil((performance.now() - started) / 1_000);
    await watcher.flush();
    expect(lookups).toBeGreaterThan(0);
    expect(lookups).toBeLessThanOrEqual(seconds);
    // A second later the next scrape asks again: a failure is not kept for good.
    await new Promise((r) => setTimeout(r, 1_100));
    const before = lookups;
    await expect(registry.metrics()).rejects.toThrow();
    await watcher.flush();
    expect(lookups).toBe(before + 1);
  } finally {
    await Promise.all([nc.close(), watcher.close()]);
  }
});
