import { warnAboutListedCommands } from "./listedCommands.js";
import { RoundsOut } from "./roundsOut.js";
import { RunningCalls } from "./upstreamCalls.js";
import { checkHealthStream, followRegistry, jsonOrNothing, warnOnReplicaDrift, healthPublisher, observeProjection, type NatsConnection, type StreamFollower } from "@manifold/bus";
import { credentialPolicy, CredentialDropped, HealthStream, limitConnections, metricsListenerOptions, readListenerTls, renewListenerTls, stdioPolicy, Subjects } from "@manifold/contracts";
import { CatalogProjection, type UpstreamState } from "@manifold/domain";
import { createMetricsRegistry, serveMetrics, type Logger } from "@manifold/telemetry";
import type { HealthReport } from "@manifold/contracts";
import { ConnectorMetrics } from "./metrics.js";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Server as TlsServer } from "node:tls";
import { isDeepStrictEqual } from "node:util";
import type { ConnectorConfig } from "./config.js";
import type { ScopedSecrets, SecretSource } from "@manifold/contracts";
import { UpstreamWorker, type WorkerOptions } from "./upstreamWorker.js";

export interface ConnectorDeps {
  config: ConnectorConfig;
  logger: Logger;
  nc: NatsConnection;
  /** Where credential references are resolved: the process environment and files in production. */
  secrets: SecretSource;
}

export interface Connector {
  readonly app: FastifyInstance;
  readonly projection: CatalogProjection;
  readonly follower: StreamFollower;
  /** The workers of the upstreams this process serves right now, by name. */
  readonly workers: ReadonlyMap<string, UpstreamWorker>;
  close(): Promise<void>;
}

/**
 * Builds a connector: it follows the registry and serves every upstream in its scope,
 * starting, restarting (on a changed registration) and stopping workers as events arrive.
 */
export async function buildConnector({ config, logger, nc, secrets }: ConnectorDeps): Promise<Connector> {
  const projection = new CatalogProjection();
  // Only what the operator allows is ever resolved or spawned (the registry refuses the rest at registration).
  const scoped: ScopedSecrets = { ...secrets, policy: credentialPolicy(config), stdio: stdioPolicy(config) };
  warnAboutListedCommands(scoped.stdio!, logger);
  const workers = new Map<string, UpstreamWorker>();
  const inScope = (name: string) => config.CONNECTOR_UPSTREAMS === "*" || config.CONNECTOR_UPSTREAMS.includes(name);
  await checkHealthStream(nc);
  await warnOnReplicaDrift(nc, [HealthStream.name], config.NATS_STREAM_REPLICAS, logger);
  const metrics = createMetricsRegistry("connector");
  observeProjection(metrics, nc, projection);
  const connectorMetrics = new ConnectorMetrics(metrics);
  const publish = healthPublisher(nc);
  const publishHealth = (report: HealthReport) => {
    connectorMetrics.health(report);
    publish(report);
  };
  const options: WorkerOptions = {
    replica: config.CONNECTOR_REPLICA_ID,
    callTimeoutMs: config.CALL_TIMEOUT_MS,
    connectTimeoutMs: config.CONNECT_TIMEOUT_MS,
    maxConcurrency: config.CONNECTOR_MAX_CONCURRENCY,
    maxQueue: config.CONNECTOR_MAX_QUEUE,
    breakerThreshold: config.CONNECTOR_BREAKER_THRESHOLD,
    breakerCooldownMs: config.CONNECTOR_BREAKER_COOLDOWN_MS,
    heartbeatMs: config.HEALTH_HEARTBEAT_MS,
    pingTimeoutMs: config.HEALTH_PING_TIMEOUT_MS,
    rediscoverMs: config.CONNECTOR_REDISCOVER_MS,
    toolShare: config.CONNECTOR_TOOL_SHARE,
    inboundPerSecond: config.CONNECTOR_INBOUND_PER_SECOND,
    pool: { maxUserSessions: config.CONNECTOR_USER_SESSIONS_MAX, userSessionIdleMs: config.CONNECTOR_USER_SESSION_IDLE_MS },
    rounds: new RoundsOut(config.CONNECTOR_MAX_ROUNDS_PER_CALLER, config.CONNECTOR_MAX_ROUND_BYTES_PER_CALLER),
    running: new RunningCalls(),
  };

  const stop = async (name: string) => {
    const worker = workers.get(name);
    if (!worker) return;
    workers.delete(name);
    await worker.close();
  };
  const start = (upstream: UpstreamState) => {
    workers.set(
      upstream.name,
      new UpstreamWorker(nc, upstream, scoped, logger.child({ upstream: upstream.name }), options, publishHealth, connectorMetrics),
    );
  };
  const sameRegistration = (a: UpstreamState, b: UpstreamState) =>
    isDeepStrictEqual(a.transport, b.transport) && isDeepStrictEqual(a.options, b.options);

  // Reconciliation is serialized so a quick remove/re-register never runs two workers.
  let reconciling = Promise.resolve();
  const reconcile = (name: string) => {
    if (!inScope(name)) return;
    reconciling = reconciling
      .then(async () => {
        const upstream = projection.upstream(name);
        const current = workers.get(name);
        if (upstream && current && sameRegistration(current.upstream, upstream)) return;
        await stop(name);
        if (upstream) start(upstream);
        else connectorMetrics.forget(name);
      })
      // One failed step must not stop every later one: the chain would stay rejected.
      .catch((err: unknown) => logger.error({ err, upstream: name }, "could not apply the upstream's registration"));
  };

  projection.onApplied((event) => {
    if (event.type.startsWith("upstream.")) reconcile(event.data.name);
  });
  // Cancellations are broadcast: whichever worker runs the call aborts it.
  const cancellations = nc.subscribe(Subjects.callCancel, {
    callback: (err, msg) => {
      if (err) return;
      const callId = msg.string();
      for (const worker of workers.values()) worker.cancel(callId);
    },
  });
  // A token a gateway dropped: the sessions opened with it end now, on every replica serving the upstream.
  const droppedSubjects = config.CONNECTOR_UPSTREAMS === "*" ? [Subjects.credentialDropped("*")] : config.CONNECTOR_UPSTREAMS.map(Subjects.credentialDropped);
  const drops = droppedSubjects.map((subject) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        const upstream = msg.subject.split(".").at(-2)!;
        const worker = workers.get(upstream);
        const parsed = msg.data.length <= 256 ? CredentialDropped.safeParse(jsonOrNothing(msg.string())) : undefined;
        if (!worker || !parsed?.success) return;
        const ended = worker.dropCredential(parsed.data.fingerprint);
        if (ended > 0) logger.info({ upstream, sessions: ended }, "sessions of a dropped credential closed");
      },
    }),
  );
  const follower = await followRegistry(nc, projection, logger.child({ part: "follower" }));

  // A missing or mismatched certificate stops the service as it starts, naming the setting and the file.
  const tls = readListenerTls("CONNECTOR", config.CONNECTOR_TLS_CERT_FILE, config.CONNECTOR_TLS_KEY_FILE);
  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), ...metricsListenerOptions(tls) });
  limitConnections(app.server, config.CONNECTOR_MAX_CONNECTIONS);
  const stopRenewal = tls ? renewListenerTls([app.server] as unknown as TlsServer[], tls, logger) : undefined;
  app.get("/healthz", async () => ({ status: "ok" }));
  serveMetrics(app, metrics);
  app.get("/readyz", async (_req, reply) => {
    const ready = !nc.isClosed() && follower.isReady();
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "not-ready", sequence: projection.sequence, upstreams: [...workers.keys()] });
  });

  return {
    app,
    projection,
    follower,
    workers,
    async close() {
      stopRenewal?.();
      await app.close();
      cancellations.unsubscribe();
      for (const drop of drops) drop.unsubscribe();
      await follower.stop();
      await reconciling;
      await Promise.all([...workers.keys()].map(stop));
    },
  };
}
