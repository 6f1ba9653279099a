import { auditStreamReady, bucketStream, listenHealth, warnOnReplicaDrift, followRegistry, observeProjection, type NatsConnection, type StreamFollower } from "@manifold/bus";
import { AuditStream, KvBucket, credentialPolicy, hostPolicy, limitConnections, listenerTransport, metricsListenerOptions, readListenerTls, renewListenerTls, processSecrets } from "@manifold/contracts";
import { createMetricsRegistry, Gauge, serveMetrics } from "@manifold/telemetry";
import { CallObserver } from "./callObserver.js";
import { CatalogProjection, HealthBoard } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { GatewayCatalog } from "./catalog.js";
import type { GatewayConfig } from "./config.js";
import { answerClientError, answerFrameworkError, registerErrorHandling } from "./http/errors.js";
import { registerMcpRoutes } from "./http/mcpRoutes.js";
import { acceptBoundedJson } from "./http/jsonBody.js";
import { refusePipelining } from "./http/pipelining.js";
import { guardHosts } from "./http/hostGuard.js";
import { answerCrossOrigin } from "./http/crossOrigin.js";
import { createMcpServer } from "./mcpServer.js";
import { ResourceUpdates } from "./resourceUpdates.js";
import { changesItems } from "./itemCatalog.js";
import { SessionTable } from "./sessions.js";
import { ModernServers } from "./modernServers.js";
import { requestStateKey } from "./requestStateKey.js";
import { TaskHandles } from "./taskHandles.js";
import { ProtocolSeam } from "./protocolSeam.js";
import { AdmittedStreams, streamShare, type WatchStream } from "./admittedStreams.js";
import { cancelToolCall } from "./toolCalls.js";
import { setTimeout as sleep } from "node:timers/promises";
import type { Server as TlsServer } from "node:tls";
import type { McpCall } from "./mcpCall.js";
import { SessionDirectory } from "./sessionDirectory.js";
import { AnswerRelay } from "./answerRelay.js";
import { ArgumentValidator } from "./argumentValidator.js";
import { InFlight, MAX_UNREAD_ANSWER_BYTES } from "./inFlight.js";
import { Authenticator } from "./auth/authenticator.js";
import { ADMISSION_EVENTS, Gatekeeper } from "./auth/gatekeeper.js";
import { RateLimiter } from "./auth/rateLimiter.js";
import { RequestBudget } from "./auth/requestBudget.js";
import { ProtectedResource } from "./auth/protectedResource.js";
import { KeyRing } from "./vault/keyRing.js";
import { TokenVault } from "./vault/tokenVault.js";
import { UpstreamAuthorization } from "./vault/upstreamAuthorization.js";
import { DelegatedCredentials } from "./vault/delegatedCredentials.js";
import { registerVaultRoutes, revokeConnection } from "./vault/vaultRoutes.js";
import { oauthCallbackUrl } from "./vault/connectPages.js";

const VERSION = "0.1.0";
/** How often Node looks for connections past their headers or request timeout: the timeouts' precision. */
const CONNECTION_CHECK_MS = 1_000;
/** The most a request to any route but the MCP endpoints may send (the vault's consent form is the largest). */
const SMALL_BODY_BYTES = 1_024;

/** Trusts the nearest `count` proxies, whatever their addresses (fastify's hop count, which its types omit). */
const hops =
  (count: number) =>
  (_address: string, hop: number): boolean =>
    hop < count;

export interface GatewayDeps {
  config: GatewayConfig;
  logger: Logger;
  nc: NatsConnection;
  /** Where `env:` secret references are read (the process environment): the requestState key, vault keys, upstream OAuth client secrets. */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface Gateway {
  readonly app: FastifyInstance;
  /** `/metrics` alone, for a listener of its own (`GATEWAY_METRICS_PORT`). */
  readonly metricsApp: FastifyInstance;
  readonly projection: CatalogProjection;
  readonly follower: StreamFollower;
  readonly sessions: SessionTable;
  /** The token vault, when `GATEWAY_VAULT_KEYS` is set. */
  readonly vault: TokenVault | undefined;
  close(): Promise<void>;
}

/** Builds the gateway without listening: replay has begun, `follower.caughtUp` says when it ends. */
export async function buildGateway({ config, logger, nc, env = {} }: GatewayDeps): Promise<Gateway> {
  const projection = new CatalogProjection();
  const catalog = new GatewayCatalog(projection, config.CALL_TIMEOUT_MS, config.GATEWAY_AUTH === "off" ? "all" : config.GATEWAY_ALLOW_ANONYMOUS ? "anonymous-grant" : "none");
  const sessions = new SessionTable(logger.child({ part: "sessions" }), config.SESSION_IDLE_MS, {
    total: config.GATEWAY_MAX_SESSIONS,
    perPrincipal: config.GATEWAY_MAX_SESSIONS_PER_PRINCIPAL,
  });
  projection.onApplied((event) => {
    if (!event.type.startsWith("virtual-server.")) return;
    if (event.type === "virtual-server.deleted") void sessions.closeVirtualServer(event.data.name);
    else {
      sessions.notifyToolsChanged(event.data.name, Date.parse(event.meta.at));
      if (changesItems(event.type)) sessions.notifyItemsChanged(event.data.name);
    }
  });
  const follower = await followRegistry(nc, projection, logger.child({ part: "follower" }));
  const directory = await SessionDirectory.open(nc, config.SESSION_IDLE_MS, logger, sessions);
  const auth = config.GATEWAY_AUTH === "required";
  if (!auth) logger.warn("GATEWAY_AUTH=off: every caller may use every virtual server");
  const gatekeeper = new Gatekeeper(
    catalog,
    auth ? new Authenticator(projection, { maxTokenLifetimeS: config.GATEWAY_JWT_MAX_LIFETIME_S, allowAnonymous: config.GATEWAY_ALLOW_ANONYMOUS, allowHttp: config.GATEWAY_OAUTH_ALLOW_HTTP, failedPerSecond: config.GATEWAY_MAX_FAILED_CREDENTIALS_PER_S }) : undefined,
    auth ? await RateLimiter.open(nc, logger) : undefined,
    () => follower.catchUp(),
  );

  // Long-lived streams, each kept only while its request would be admitted, and counted per caller.
  const streams = new AdmittedStreams();
  // A missing or mismatched certificate stops the service as it starts, naming the setting and the file.
  const tls = readListenerTls("GATEWAY", config.GATEWAY_TLS_CERT_FILE, config.GATEWAY_TLS_KEY_FILE);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: building one (bindings serialised, redaction paths applied) was
    // ~2 % of the gateway's CPU at 64 clients, for a request id only the unhandled-error log uses.
    childLoggerFactory: (parent) => parent,
    // The MCP routes take `GATEWAY_BODY_LIMIT_BYTES`, once their request is admitted; nothing else needs more than a small form.
    bodyLimit: SMALL_BODY_BYTES,
    // Slow or oversized requests are cut by Node's parser (checked every second), with a JSON-RPC answer.
    ...listenerTransport(
      {
        maxHeaderSize: config.GATEWAY_MAX_HEADER_BYTES,
        headersTimeout: Math.min(config.GATEWAY_HEADERS_TIMEOUT_MS, config.GATEWAY_REQUEST_TIMEOUT_MS),
        requestTimeout: config.GATEWAY_REQUEST_TIMEOUT_MS,
        connectionsCheckingInterval: CONNECTION_CHECK_MS,
      },
      tls,
    ),
    requestTimeout: config.GATEWAY_REQUEST_TIMEOUT_MS,
    clientErrorHandler: answerClientError,
    frameworkErrors: answerFrameworkError,
    // Longer than any name can be, so a long one is an unknown virtual server, not a router error.
    routerOptions: { maxParamLength: 1024 },
    // close() runs after calls have drained and sessions have ended: what is still open then
    // (clients' notification streams) is cut rather than waited for.
    forceCloseConnections: true,
    // request.ip is the forwarded client's only when the peer is a proxy the operator named.
    trustProxy: typeof config.GATEWAY_TRUST_PROXY === "number" ? hops(config.GATEWAY_TRUST_PROXY) : config.GATEWAY_TRUST_PROXY,
  });
  const share = streamShare(config.GATEWAY_MAX_CONNECTIONS);
  limitConnections(app.server, config.GATEWAY_MAX_CONNECTIONS, { yieldStream: () => streams.yieldOne(share), unreadTimeoutMs: config.GATEWAY_REQUEST_TIMEOUT_MS });
  registerErrorHandling(app);
  refusePipelining(app);
  acceptBoundedJson(app);
  const hosts = hostPolicy(config.GATEWAY_HOST, config.GATEWAY_ALLOWED_HOSTS, config.GATEWAY_ALLOWED_ORIGINS, "GATEWAY");
  guardHosts(app, hosts);
  answerCrossOrigin(app, hosts);
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const ready = !nc.isClosed() && follower.isReady() && !inFlight.draining;
    // The status only: this port is public, and the registry's sequence would tell anyone without
    // credentials when and how often the catalog changes (keys issued, revoked). The metrics
    // listener has it (manifold_projection_sequence).
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "not-ready" });
  });
  const validator = new ArgumentValidator(logger.child({ part: "arguments" }));
  // With authentication off (trusted setups) no caller's unread answers are bounded, as for answers being written.
  const inFlight = new InFlight(config.GATEWAY_MAX_CALLS_PER_PRINCIPAL, auth ? MAX_UNREAD_ANSWER_BYTES : Infinity);
  const metrics = createMetricsRegistry("gateway");
  observeProjection(metrics, nc, projection);
  new Gauge({
    name: "manifold_gateway_sessions",
    help: "MCP sessions this gateway replica holds.",
    registers: [metrics],
    collect() {
      this.set(sessions.size);
    },
  });
  // Upstream health as every connector replica reports it, folded into one status per upstream.
  const health = new HealthBoard(config.HEALTH_STALE_MS);
  const stopHealth = listenHealth(nc, (report) => health.record(report), logger.child({ part: "health" }));
  const HEALTH_LEVEL = { up: 0, degraded: 1, down: 2, unknown: 3 } as const;
  new Gauge({
    name: "manifold_gateway_upstream_health",
    help: "Each upstream's health across its connector replicas, as this gateway sees it: 0 up, 1 degraded, 2 down, 3 unknown.",
    labelNames: ["upstream"],
    registers: [metrics],
    collect() {
      // Only the upstreams that exist now: a deleted one kept its last status for the process's life.
      this.reset();
      for (const upstream of projection.upstreams()) this.set({ upstream: upstream.name }, HEALTH_LEVEL[health.of(upstream.name).status]);
    },
  });
  const metricsApp = Fastify({ loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }), ...metricsListenerOptions(tls) });
  limitConnections(metricsApp.server, config.GATEWAY_METRICS_MAX_CONNECTIONS);
  const stopRenewal = tls ? renewListenerTls([app.server, metricsApp.server] as unknown as TlsServer[], tls, logger) : undefined;
  serveMetrics(metricsApp, metrics);
  await auditStreamReady(nc, logger);
  const buckets = [KvBucket.sessions, ...(auth ? [KvBucket.rate] : []), ...(config.GATEWAY_VAULT_KEYS ? [KvBucket.vault, KvBucket.oauthFlows] : [])].map(bucketStream);
  await warnOnReplicaDrift(nc, [AuditStream.name, ...buckets], config.NATS_STREAM_REPLICAS, logger);
  const observer = new CallObserver(nc, metrics, projection, config.GATEWAY_AUDIT_VALUE_BYTES);
  const answers = new AnswerRelay(nc, directory.replica, (id) => sessions.transportOf(id), (reason) => observer.answerDropped(reason));
  sessions.attach(directory, answers);
  // The callers' own upstream credentials: token exchange always, vault tokens only with keys to seal them (and a public URL to come back to).
  const scoped = { ...processSecrets(env), policy: credentialPolicy(config) };
  const publicUrl = config.GATEWAY_PUBLIC_URL?.replace(/\/+$/, "");
  const authorization = new UpstreamAuthorization(scoped, (upstream) => oauthCallbackUrl(publicUrl ?? "", upstream), { allowHttp: config.GATEWAY_OAUTH_ALLOW_HTTP });
  projection.onApplied((event) => {
    if (event.type.startsWith("upstream.")) authorization.forget((event.data as { name: string }).name);
  });
  // Each caller's requests a second on this replica: the MCP endpoints' and the vault's connection routes'.
  // With authentication off (trusted test setups) no caller has a budget.
  const budget = auth ? new RequestBudget(config.GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL) : undefined;
  const vaultLogger = logger.child({ part: "vault" });
  let vault: TokenVault | undefined;
  if (config.GATEWAY_VAULT_KEYS !== undefined && publicUrl !== undefined) {
    const ring = await KeyRing.load(config.GATEWAY_VAULT_KEYS, scoped);
    vault = await TokenVault.open(nc, ring, config.GATEWAY_OAUTH_FLOW_TTL_S * 1000, vaultLogger);
    // A rotation under way (docs/identity.md): records sealed by an older key move to the current one.
    if (ring.size > 1) {
      void vault.rewrap().then(
        (moved) => vaultLogger.info({ key: ring.current, ...moved }, "vault records re-sealed with the current key"),
        (error: unknown) => vaultLogger.warn({ err: error }, "vault records could not all be re-sealed; the next start tries again"),
      );
    }
    registerVaultRoutes(app, { projection, vault, authorization, authenticator: gatekeeper.authenticator, budget, publicUrl, flowTtlS: config.GATEWAY_OAUTH_FLOW_TTL_S, logger: vaultLogger });
    // An admin's revocation, on every replica (and again on replay: only tokens connected before it are dropped).
    const tokens = vault;
    projection.onApplied((event) => {
      const revoke = (consumer: string, upstream: string) =>
        revokeConnection({ projection, vault: tokens, authorization, logger: vaultLogger }, consumer, upstream, Date.parse(event.meta.at)).catch((error: unknown) =>
          vaultLogger.warn({ err: error, upstream, consumer }, "a revoked connection could not be removed; it is retried at the next start"),
        );
      if (event.type === "consumer.connection-revoked") void revoke(event.data.name, event.data.upstream);
      // A deleted consumer's connections go with it.
      if (event.type === "consumer.deleted") {
        const consumer = event.data.name;
        void tokens.connections(consumer).then((all) => Promise.all(all.map((c) => revoke(consumer, c.upstream))), () => undefined);
      }
    });
  }
  const delegated = new DelegatedCredentials(projection, authorization, vault && publicUrl ? { tokens: vault, publicUrl } : undefined, config.GATEWAY_VAULT_REFRESH_MARGIN_S * 1000, vaultLogger, config.GATEWAY_EXCHANGED_TOKENS_KEPT);
  // One shared key signs 2026-07-28 requestState and seals task ids, so any replica serves either.
  const stateKey = await requestStateKey(config.GATEWAY_REQUEST_STATE_KEY, scoped, logger);
  const accessNow = (call: Pick<McpCall, "virtualServer" | "environment" | "principal">) => gatekeeper.accessNow(call.virtualServer, call.environment, call.principal);
  const deps = { catalog, nc, validator, observer, delegated, inFlight, accessNow, health, taskHandles: new TaskHandles(stateKey) };
  const protectedResource = new ProtectedResource(projection, config.GATEWAY_PUBLIC_URL, config.GATEWAY_OAUTH_SCOPES, hosts.hosts !== "any");
  // A change to credentials or grants: each open stream lives on only if its request would be
  // admitted now (checked once per burst of events: a boot replay holds none).
  const watchStream: WatchStream = (call, request, response) => {
    // Only what admission reads is kept for the stream's life, not the request and its body (a listen
    // request's 400 KB of resource URIs were kept by 100 streams of one consumer: +40 MiB).
    const { virtualServer, environment, access } = call;
    const { authorization } = request.headers;
    const resource = protectedResource.resourceOf(request);
    streams.watch(response, call.principal.id, () => gatekeeper.admitsNow(virtualServer, environment, authorization, () => resource, access));
  };
  let recheck: NodeJS.Immediate | undefined;
  projection.onApplied((event) => {
    if (!ADMISSION_EVENTS.has(event.type) || recheck) return;
    recheck = setImmediate(() => {
      recheck = undefined;
      streams.recheck();
    });
  });
  // And every so often, for what no event announces: a JWT's expiry.
  const recheckTimer = setInterval(() => streams.recheck(), config.GATEWAY_STREAM_RECHECK_S * 1000).unref();
  const modern = new ModernServers(
    deps,
    VERSION,
    config.GATEWAY_LIST_TTL_MS,
    stateKey,
    config.GATEWAY_REQUEST_STATE_TTL_S,
    { total: config.GATEWAY_MAX_LISTENS, perPrincipal: config.GATEWAY_MAX_LISTENS_PER_PRINCIPAL },
    watchStream,
  );
  // Every replica follows the registry: its own listen streams hear every change.
  projection.onApplied((event) => {
    if (!event.type.startsWith("virtual-server.")) return;
    if (event.type === "virtual-server.deleted") void modern.close(event.data.name);
    else {
      modern.toolsChanged(event.data.name);
      if (changesItems(event.type)) modern.itemsChanged(event.data.name);
    }
  });
  // Subscribed resources' updates, relayed by connectors: to this replica's sessions and listen streams.
  const updates = new ResourceUpdates(nc);
  updates.watch((upstream, uri) => modern.resourceUpdated(upstream, uri), () => modern.retellUpdates());
  const seam = new ProtocolSeam(deps, inFlight, sessions, modern, (call) => createMcpServer(call, deps, VERSION, updates, sessions), {
    fastPath: config.GATEWAY_FAST_PATH === "on",
    listTtlMs: config.GATEWAY_LIST_TTL_MS,
    version: VERSION,
    budget,
    watchStream,
  });
  // A consumer deleted: what its callers hold here ends with it (its key is refused from the next
  // request on). Its calls are cancelled on every connector (each is answered as cancelled, no
  // result), its listen streams end, and its sessions close once their calls are answered (within
  // 2 s; polled, so that the answer of a call that just ended is written before its stream closes:
  // closed at once, a 2025 call's stream would end without its answer). Replayed at boot, when
  // nothing is held, it does nothing.
  // A consumer's groups changed: what admits it, and what its lists hold, with them. Its listen
  // streams whose lists changed are ended with list_changed (`AdmittedStreams`); its 2025 sessions are told here.
  projection.onApplied((event) => {
    if (event.type === "consumer.updated") sessions.notifyConsumerChanged(event.data.name);
  });
  projection.onApplied((event) => {
    if (event.type !== "consumer.deleted") return;
    const consumer = event.data.name;
    for (const callId of inFlight.runningOf(consumer)) cancelToolCall(nc, callId);
    modern.endConsumer(consumer);
    void (async () => {
      for (const deadline = Date.now() + 2_000; inFlight.runningOf(consumer).length > 0 && Date.now() < deadline; ) await sleep(50);
      await sessions.closeConsumer(consumer);
    })();
  });
  protectedResource.register(app);
  registerMcpRoutes(app, catalog, gatekeeper, observer, inFlight, seam, protectedResource, { bodyLimit: config.GATEWAY_BODY_LIMIT_BYTES, linkAgentTrace: config.GATEWAY_AGENT_TRACE === "link" });

  return {
    app,
    metricsApp,
    projection,
    follower,
    sessions,
    vault,
    async close() {
      // Refuse new requests, let calls in flight finish, then end sessions (and their
      // long-lived streams, which would otherwise hold the server open) and stop listening.
      await inFlight.drain(config.GATEWAY_DRAIN_MS);
      clearInterval(recheckTimer);
      await sessions.closeAll();
      await modern.close();
      updates.close();
      stopRenewal?.();
      await app.close();
      await metricsApp.close();
      observer.flush();
      directory.close();
      answers.close();
      vault?.close();
      await stopHealth();
      await follower.stop();
    },
  };
}
