import { ensureKvBuckets, ensureRegistryStream, kvBucketReady, type NatsConnection } from "@manifold/bus";
import { HealthStream, KV_BUCKETS, KvBucket, RegistryStream, Subjects } from "@manifold/contracts";
import { buildGateway, loadGatewayConfig } from "@manifold/gateway";
import type { NatsServer } from "@manifold/nats-server";
import { buildRegistry, loadRegistryConfig } from "@manifold/registry";
import { createLogger } from "@manifold/telemetry";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { busEnv, connectAs, startNats } from "../helpers/stack.js";

const stream = (bucket: string) => `KV_${bucket}`;
const quiet = createLogger({ component: "test", level: "silent" });

/**
 * Whoever creates a bucket's stream picks where what it captures goes. The attack (helper-191):
 * a gateway's identity, allowed to create its buckets, made KV_manifold-rate republish its writes
 * into MANIFOLD_REGISTRY (where gateways may not write), and the vault bucket republish them as a
 * connector's health report. Now the registry alone makes the four buckets; gateways open them.
 */
describe("only the registry makes the gateways' KV buckets", () => {
  let nats: NatsServer;
  let operator: NatsConnection;

  beforeEach(async () => {
    nats = await startNats();
    operator = await connectAs(nats, "operator", "test");
  });
  afterEach(async () => {
    await operator.close();
    await nats.stop();
  });

  // attack (helper-193): the gateway's identity made its buckets' streams republish its writes.
  test("a gateway's identity cannot make a bucket that republishes into the registry's log or as a health report", async () => {
    const registry = await connectAs(nats, "registry", "registry");
    await ensureRegistryStream(await jetstreamManager(registry), 1);
    const heard: string[] = [];
    operator.subscribe(HealthStream.subjects, { callback: (_e, m) => void heard.push(m.subject) });
    await operator.flush();
    const gateway = await connectAs(nats, "gateway", "gateway");
    const jsm = await jetstreamManager(gateway);
    const attacks = [
      { bucket: KvBucket.rate, dest: "manifold.evt.upstream.forged" },
      { bucket: KvBucket.vault, dest: Subjects.upstreamHealth("a", "r1") },
    ];
    const made: string[] = [];
    for (const { bucket, dest } of attacks) {
      const config = { name: stream(bucket), subjects: [`$KV.${bucket}.>`], max_msgs_per_subject: 1, allow_rollup_hdrs: true, republish: { src: `$KV.${bucket}.k`, dest } };
      made.push(await jsm.streams.add(config).then(() => "created", (e: Error) => e.message));
      gateway.publish(`$KV.${bucket}.k`, JSON.stringify({ upstream: "a", replica: "r1", status: "up" }));
    }
    await gateway.flush();
    await new Promise((r) => setTimeout(r, 300));
    const inLog = (await (await jetstreamManager(operator)).streams.info(RegistryStream.name)).state.messages;
    console.log(`the gateway's creates: ${JSON.stringify(made)}; landed in ${RegistryStream.name}: ${inLog}; heard as health reports: ${heard.length}`);
    for (const outcome of made) expect(outcome).toMatch(/Permissions Violation|permission/i);
    expect(inLog).toBe(0);
    expect(heard).toEqual([]);
    await Promise.all([registry.close(), gateway.close()]);
  });

  test("the registry makes every bucket with its settings; the gateway writes to them and still creates none", async () => {
    const registry = await connectAs(nats, "registry", "registry");
    await ensureKvBuckets(registry, 1, quiet);
    const jsm = await jetstreamManager(operator);
    for (const bucket of Object.values(KvBucket)) {
      const { config } = await jsm.streams.info(stream(bucket));
      expect({ history: config.max_msgs_per_subject, maxAgeMs: config.max_age / 1_000_000, republish: config.republish }).toEqual({
        history: KV_BUCKETS[bucket].history,
        maxAgeMs: KV_BUCKETS[bucket].maxAgeMs ?? 0,
        republish: undefined,
      });
    }
    const gateway = await connectAs(nats, "gateway", "gateway");
    const info = await kvBucketReady(gateway, KvBucket.rate, quiet);
    const kv = await new Kvm(jetstream(gateway)).open(KvBucket.rate, { allow_direct: info.config.allow_direct });
    await kv.put("k", "1");
    expect((await kv.get("k"))?.string()).toBe("1");
    await (await jetstreamManager(operator)).streams.delete(stream(KvBucket.oauthFlows));
    await expect(new Kvm(jetstream(gateway)).create(KvBucket.oauthFlows)).rejects.toThrow(/Permissions Violation|permission/i);
    await Promise.all([registry.close(), gateway.close()]);
  });

  test("a republishing bucket made otherwise stops the registry and the gateway, by name", async () => {
    await (await jetstreamManager(operator)).streams.add({ name: stream(KvBucket.rate), subjects: [`$KV.${KvBucket.rate}.>`], republish: { src: `$KV.${KvBucket.rate}.k`, dest: "manifold.evt.x" } });
    const [registry, gateway] = await Promise.all([connectAs(nats, "registry", "registry"), connectAs(nats, "gateway", "gateway")]);
    await expect(ensureKvBuckets(registry, 1, quiet)).rejects.toThrow(/stream KV_manifold-rate republishes what it captures/);
    await expect(kvBucketReady(gateway, KvBucket.rate, quiet)).rejects.toThrow(/stream KV_manifold-rate republishes what it captures/);
    await Promise.all([registry.close(), gateway.close()]);
  });

  test("rolling upgrade: a bucket an older gateway made with its own ttl is kept as it is", async () => {
    await new Kvm(jetstream(operator)).create(KvBucket.sessions, { history: 1, ttl: 30 * 60_000 });
    const registry = await connectAs(nats, "registry", "registry");
    const warnings: string[] = [];
    await ensureKvBuckets(registry, 1, createLogger({ component: "registry", level: "warn", destination: { write: (line: string) => void warnings.push(line) } }));
    const { config } = await (await jetstreamManager(operator)).streams.info(stream(KvBucket.sessions));
    expect(config.max_age / 1_000_000).toBe(30 * 60_000);
    // Said once, for that bucket alone: a gateway's SESSION_IDLE_MS past 30 min is cut short until an operator edits it.
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/"stream":"KV_manifold-sessions","keptMs":1800000.*keeps the max age it was made with/);
    await registry.close();
  });

  test("a gateway started before the registry waits, says why, and serves once the registry made the buckets", async () => {
    const lines: string[] = [];
    const logger = createLogger({ component: "gateway", level: "info", destination: { write: (line: string) => void lines.push(line) } });
    const gatewayConfig = loadGatewayConfig({ ...busEnv(nats, "gateway"), GATEWAY_AUTH: "off" });
    const registryBus = await connectAs(nats, "registry", "registry");
    // The registry's log there already (a registry of the previous version running): the gateway gets as far as its buckets.
    await ensureRegistryStream(await jetstreamManager(registryBus), 1);
    const gatewayBus = await connectAs(nats, "gateway", "gateway");
    let built = false;
    const building = buildGateway({ config: gatewayConfig, logger, nc: gatewayBus, env: {} }).then((g) => {
      built = true;
      return g;
    });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(built).toBe(false);
    expect(lines.join("\n")).toMatch(/"stream":"KV_manifold-sessions".*waiting for the registry to create the stream/);
    const registry = await buildRegistry({ config: loadRegistryConfig({ ...busEnv(nats, "registry"), MANIFOLD_ADMIN_TOKEN: "t".repeat(32) }), logger: quiet, nc: registryBus });
    const started = Date.now();
    const gateway = await building;
    console.log(`gateway built ${Date.now() - started} ms after the registry made the buckets`);
    await gateway.follower.caughtUp;
    await gateway.app.listen({ host: "127.0.0.1", port: 0 });
    const { port } = gateway.app.server.address() as { port: number };
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    await gateway.close();
    await registry.close();
    await Promise.all([gatewayBus.close(), registryBus.close()]);
  });
});
