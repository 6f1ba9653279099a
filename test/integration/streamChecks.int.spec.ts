import { auditStreamReady, checkHealthStream, ensureAuditStream, ensureHealthStream, type NatsConnection } from "@manifold/bus";
import { AuditStream, HealthStream, Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { connectAs, startNats } from "../helpers/stack.js";

const DAY_MS = 24 * 3_600_000;
const retention = { maxAgeMs: 30 * DAY_MS, maxBytes: 1024 ** 3 };

/**
 * Whoever creates a stream first picks what it captures. The attack: under a stolen identity,
 * before Manifold's services first start, make the audit stream also capture the call subjects
 * (or the health stream copy another stream), so that its readers are handed the agents'
 * pass-through credentials. A stream Manifold did not make so stops the service, by name.
 */
describe("Manifold's streams are used only as Manifold makes them", () => {
  let nats: NatsServer;
  let operator: NatsConnection;
  const warnings: string[] = [];
  const logger = createLogger({ component: "test", level: "warn", destination: { write: (line: string) => void warnings.push(line) } });

  beforeEach(async () => {
    nats = await startNats();
    operator = await connectAs(nats, "operator", "test");
    warnings.length = 0;
  });
  afterEach(async () => {
    await operator.close();
    await nats.stop();
  });

  test("an audit stream that also captures the call subjects stops the registry and the gateway", async () => {
    await (await jetstreamManager(operator)).streams.add({ name: AuditStream.name, subjects: [AuditStream.subjects, Subjects.upstreamCall("*")] });
    const registry = await connectAs(nats, "registry", "registry");
    const gateway = await connectAs(nats, "gateway", "gateway");
    await expect(ensureAuditStream(registry, retention, 1, logger)).rejects.toThrow(/stream MANIFOLD_AUDIT captures .*manifold\.rpc\.upstream\.\*\.call.*not only manifold\.audit\.>/);
    await expect(auditStreamReady(gateway, logger)).rejects.toThrow(/MANIFOLD_AUDIT/);
    await Promise.all([registry.close(), gateway.close()]);
  });

  test("a health stream fed from another stream stops the connector", async () => {
    const jsm = await jetstreamManager(operator);
    await jsm.streams.add({ name: "COPY", subjects: ["elsewhere.>"] });
    await jsm.streams.add({ name: HealthStream.name, subjects: [HealthStream.subjects], sources: [{ name: "COPY" }] });
    const connector = await connectAs(nats, "connector", "connector");
    await expect(checkHealthStream(connector)).rejects.toThrow(/stream MANIFOLD_HEALTH .*copies another stream/);
    await connector.close();
  });

  // attack (helper-191): the check read what a stream captures, not where it sends it. A connector's
  // identity (it could create the health stream) made one capturing exactly manifold.health.> and
  // republishing it: every node took it as Manifold's, and nats-server published each report the
  // connector wrote on its own subject again on one it may not publish to (here the gateways'
  // session closings), past its permissions. Now only the registry creates the stream, and a
  // republishing one (made before, or by an operator) stops the connector and the registry.
  test("a connector's identity cannot make the health stream; one that republishes what it captures stops the connector and the registry", async () => {
    const connector = await connectAs(nats, "connector", "connector");
    const heard: string[] = [];
    operator.subscribe(Subjects.sessionClosed, { callback: (_e, m) => void heard.push(m.string()) });
    await operator.flush();
    const republishing = { name: HealthStream.name, subjects: [HealthStream.subjects], republish: { src: Subjects.upstreamHealth("a", "r1"), dest: Subjects.sessionClosed } };
    const made = await (await jetstreamManager(connector)).streams.add(republishing).then(() => "created", (e: Error) => e.message);
    // What a gateway publishes there: the id of a 2025 session every replica is to drop.
    connector.publish(Subjects.upstreamHealth("a", "r1"), "someone-elses-session");
    await connector.flush();
    await new Promise((r) => setTimeout(r, 300));
    await (await jetstreamManager(operator)).streams.add(republishing).catch(() => undefined);
    const registry = await connectAs(nats, "registry", "registry");
    const checks = await Promise.all([checkHealthStream(connector), ensureHealthStream(registry, 1)].map((p) => p.then(() => "started", (e: Error) => e.message)));
    console.log(`the connector's create: ${made}; republished onto ${Subjects.sessionClosed}: ${heard.length}; connector, registry on a republishing stream: ${JSON.stringify(checks)}`);
    expect(made).not.toBe("created");
    expect(heard).toEqual([]);
    for (const check of checks) expect(check).toMatch(/stream MANIFOLD_HEALTH republishes what it captures/);
    await Promise.all([connector.close(), registry.close()]);
  });

  test("the registry makes the audit stream with its retention; another retention later is logged, not applied (no identity may update it)", async () => {
    const registry = await connectAs(nats, "registry", "registry");
    await ensureAuditStream(registry, retention, 1, logger);
    await ensureAuditStream(registry, { ...retention, maxAgeMs: DAY_MS }, 1, logger);
    const { config } = await (await jetstreamManager(operator)).streams.info(AuditStream.name);
    expect({ subjects: config.subjects, maxAgeMs: config.max_age / 1_000_000, maxBytes: config.max_bytes }).toEqual({ subjects: [AuditStream.subjects], ...retention });
    expect(warnings.join("\n")).toMatch(/keeps its retention, which differs from AUDIT_MAX_AGE_HOURS/);
    const gateway = await connectAs(nats, "gateway", "gateway");
    await auditStreamReady(gateway, logger);
    await Promise.all([registry.close(), gateway.close()]);
  });
});
