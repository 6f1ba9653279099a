import { bucketStream, ensureAuditStream, ensureHealthStream, ensureKvBuckets, EventStore, warnOnReplicaDrift, followHealth, followRegistry, observeProjection, type NatsConnection, type StreamFollower } from "@manifold/bus";
import { AuditQuery, AuditStream, credentialPolicy, HealthStream, hostPolicy, KvBucket, limitConnections, listenerTransport, metricsListenerOptions, readListenerTls, renewListenerTls, RegistryStream, stdioPolicy } from "@manifold/contracts";
import { createMetricsRegistry, serveMetrics } from "@manifold/telemetry";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { queryAudit } from "./auditQuery.js";
import { createAdopter, createToolListRecorder, eventBytesWithin, serveDiscoveryReports } from "./driftReview.js";
import { registerDriftRoutes } from "./http/driftRoutes.js";
import { registerItemRoutes } from "./http/itemRoutes.js";
import { registerEnvironmentRoutes } from "./http/environmentRoutes.js";
import { CatalogProjection, HealthBoard } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import swagger from "@fastify/swagger";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { createCommandHandler, type CommandHandler } from "./commandHandler.js";
import { IdempotencyIndex } from "./idempotency.js";
import { adminTokens, type RegistryConfig } from "./config.js";
import { createDiscovery } from "./discovery.js";
import { requireAdminToken } from "./http/auth.js";
import { registerHistoryRoutes } from "./http/historyRoutes.js";
import { clientErrors, frameworkErrors, registerErrorHandling } from "./http/errors.js";
import { acceptEmptyJsonBodies } from "./http/jsonBody.js";
import { answerAdminCrossOrigin, guardAdminHosts } from "./http/hostGuard.js";
import { registerRoutes } from "./http/routes.js";
import { registerToolSearch } from "./http/toolSearch.js";
import { registerEnvironmentPins } from "./http/environmentPins.js";
import type { Server as TlsServer } from "node:tls";
import { registerSelectionRoutes } from "./http/selectionRoutes.js";
import { registerAccessRoutes } from "./http/accessRoutes.js";
import { registerConsoleRoutes } from "./http/consoleRoutes.js";
import { serveConsole } from "./console.js";
import { PageReads } from "./pageReads.js";
import { AdminBudget } from "./adminBudget.js";
import { Refusals } from "./refusals.js";

export interface RegistryDeps {
  config: RegistryConfig;
  logger: Logger;
  nc: NatsConnection;
}

export interface Registry {
  readonly app: FastifyInstance;
  /** `/metrics` alone, for a listener of its own (`REGISTRY_METRICS_PORT`). */
  readonly metricsApp: FastifyInstance;
  readonly projection: CatalogProjection;
  readonly follower: StreamFollower;
  readonly execute: CommandHandler;
  close(): Promise<void>;
}

/** Builds the registry without listening: replay has begun, `follower.caughtUp` says when it ends. */
export async function buildRegistry({ config, logger, nc }: RegistryDeps): Promise<Registry> {
  const replicas = config.NATS_STREAM_REPLICAS;
  const store = await EventStore.open(nc, { replicas });
  const projection = new CatalogProjection();
  // Subscribed before the replay begins, so it sees every event from the first.
  const keys = new IdempotencyIndex();
  projection.onApplied((event, sequence) => keys.record(event, sequence));
  const follower = await followRegistry(nc, projection, logger.child({ part: "follower" }));
  const execute = createCommandHandler(projection, store, follower, keys);
  const health = new HealthBoard(config.HEALTH_STALE_MS);
  await ensureHealthStream(nc, replicas);
  const stopHealth = await followHealth(nc, (report) => health.record(report), logger.child({ part: "health" }));
  await ensureAuditStream(nc, { maxAgeMs: config.AUDIT_MAX_AGE_HOURS * 3_600_000, maxBytes: config.AUDIT_MAX_BYTES }, replicas, logger);
  // The gateways' buckets too: whoever makes one picks where its writes go, so no gateway may.
  await ensureKvBuckets(nc, replicas, logger);
  await warnOnReplicaDrift(nc, [RegistryStream.name, HealthStream.name, AuditStream.name, ...Object.values(KvBucket).map(bucketStream)], replicas, logger);
  const metrics = createMetricsRegistry("registry");
  observeProjection(metrics, nc, projection);
  const refusals = new Refusals(metrics);
  const maxEventBytes = () => eventBytesWithin(nc.info?.max_payload);
  const adopt = createAdopter(projection, execute, logger.child({ part: "drift" }), maxEventBytes);
  const recordToolList = createToolListRecorder(execute, adopt, maxEventBytes);
  const discover = createDiscovery(nc, projection, recordToolList, logger.child({ part: "discovery" }), config.DISCOVERY_TIMEOUT_MS);
  const reports = serveDiscoveryReports(nc, projection, recordToolList, logger.child({ part: "drift" }));

  // A missing or mismatched certificate stops the service as it starts, naming the setting and the file.
  const tls = readListenerTls("REGISTRY", config.REGISTRY_TLS_CERT_FILE, config.REGISTRY_TLS_KEY_FILE);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024 * 1024,
    // Without these a caller without a token held sockets and unread bodies for as long as it liked
    // (1,000 slow bodies held ~1 GiB; 10,172 sockets were still open 93 s after their 401).
    ...listenerTransport(
      {
        headersTimeout: Math.min(config.REGISTRY_HEADERS_TIMEOUT_MS, config.REGISTRY_REQUEST_TIMEOUT_MS),
        requestTimeout: config.REGISTRY_REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: 1_000,
      },
      tls,
    ),
    requestTimeout: config.REGISTRY_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: config.REGISTRY_KEEP_ALIVE_TIMEOUT_MS,
    // Long enough that an over-long name reaches its schema, which names the parameter.
    routerOptions: { maxParamLength: 512 },
    frameworkErrors,
    clientErrorHandler: clientErrors(refusals),
  });
  // The timeouts bound how long each connection is held, not how many: one peer's 3,000 silent
  // connections took all 1,024 descriptors and another admin's commands were reset (adminConnectionFlood.int).
  limitConnections(app.server, config.REGISTRY_MAX_CONNECTIONS, { onShed: (what) => refusals.connection(what), unreadTimeoutMs: config.REGISTRY_REQUEST_TIMEOUT_MS });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandling(app, refusals);
  const hosts = hostPolicy(config.REGISTRY_HOST, config.REGISTRY_ALLOWED_HOSTS, config.REGISTRY_ALLOWED_ORIGINS, "REGISTRY");
  guardAdminHosts(app, hosts);
  answerAdminCrossOrigin(app, hosts);
  acceptEmptyJsonBodies(app);
  // Answers carry keys shown once, audit records, the catalog: never kept by a cache or a browser's
  // disk, never sniffed as another type. The console's files set their own caching (`serveConsole`).
  app.addHook("onSend", async (_req, reply, payload) => {
    if (!reply.hasHeader("cache-control")) reply.header("cache-control", "no-store");
    reply.header("x-content-type-options", "nosniff");
    return payload;
  });
  await app.register(swagger, {
    openapi: { info: { title: "Manifold registry admin API", version: "1" } },
    transform: jsonSchemaTransform,
  });

  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const ready = !nc.isClosed() && follower.isReady();
    // The status only: the sequence would tell anyone who reaches the admin port, token or not, when
    // and how often the catalog changes (keys issued and revoked). The metrics listener has it.
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "not-ready" });
  });
  app.get("/openapi.json", async () => app.swagger());
  const metricsApp = Fastify({ loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), ...metricsListenerOptions(tls) });
  limitConnections(metricsApp.server, config.REGISTRY_METRICS_MAX_CONNECTIONS);
  const stopRenewal = tls ? renewListenerTls([app.server, metricsApp.server] as unknown as TlsServer[], tls, logger) : undefined;
  serveMetrics(metricsApp, metrics);
  serveConsole(app, { dir: config.CONSOLE_DIR, traceUrl: config.CONSOLE_TRACE_URL });
  const budget = new AdminBudget(config.REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN);
  const reads = new PageReads({ perAdmin: config.REGISTRY_MAX_PAGE_READS_PER_ADMIN, overall: config.REGISTRY_MAX_PAGE_READS });
  await app.register(async (admin) => {
    requireAdminToken(admin, adminTokens(config), budget);
    registerRoutes(admin, projection, health, execute, discover, { credentials: credentialPolicy(config), stdio: stdioPolicy(config) });
    registerAccessRoutes(admin, projection, execute);
    registerDriftRoutes(admin, projection, execute, adopt);
    registerToolSearch(admin, projection);
    registerItemRoutes(admin, projection, execute);
    registerEnvironmentRoutes(admin, projection, execute);
    registerEnvironmentPins(admin, projection);
    registerSelectionRoutes(admin, projection);
    registerHistoryRoutes(admin, nc, reads);
    registerConsoleRoutes(admin, projection);
    admin.withTypeProvider<ZodTypeProvider>().get("/v1/audit", { schema: { querystring: AuditQuery } }, async (req) =>
      reads.run(req.adminName, () => queryAudit(nc, req.query)),
    );
  });

  return {
    app,
    metricsApp,
    projection,
    follower,
    execute,
    async close() {
      stopRenewal?.();
      await app.close();
      await metricsApp.close();
      reports.unsubscribe();
      await follower.stop();
      await stopHealth();
    },
  };
}

