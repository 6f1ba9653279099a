import { followRegistry, type NatsConnection, type StreamFollower } from "@manifold/bus";
import { CatalogProjection, type UpstreamState } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { Subscription } from "@nats-io/transport-node";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { isDeepStrictEqual } from "node:util";
import type { ConnectorConfig } from "./config.js";
import { serveUpstream } from "./upstreamHandlers.js";
import { UpstreamSession } from "./upstreamSession.js";

export interface ConnectorDeps {
  config: ConnectorConfig;
  logger: Logger;
  nc: NatsConnection;
}

export interface Connector {
  readonly app: FastifyInstance;
  readonly projection: CatalogProjection;
  readonly follower: StreamFollower;
  /** Names of the upstreams this process serves right now. */
  served(): string[];
  close(): Promise<void>;
}

interface Served {
  session: UpstreamSession;
  subscriptions: Subscription[];
}

/**
 * Builds a connector: it follows the registry and serves every upstream in its scope,
 * starting, restarting (on a changed transport) and stopping sessions as events arrive.
 */
export async function buildConnector({ config, logger, nc }: ConnectorDeps): Promise<Connector> {
  const projection = new CatalogProjection();
  const served = new Map<string, Served>();
  const inScope = (name: string) => config.CONNECTOR_UPSTREAMS === "*" || config.CONNECTOR_UPSTREAMS.includes(name);

  const stop = async (name: string) => {
    const entry = served.get(name);
    if (!entry) return;
    served.delete(name);
    for (const sub of entry.subscriptions) sub.unsubscribe();
    await entry.session.close();
  };

  const start = (upstream: UpstreamState) => {
    const log = logger.child({ upstream: upstream.name });
    const session = new UpstreamSession(upstream.name, upstream.transport, log);
    // Subscribing before the session is up lets early calls wait for it instead of
    // failing with "no responders".
    const subscriptions = serveUpstream(nc, session, log, {
      callTimeoutMs: config.CALL_TIMEOUT_MS,
      connectTimeoutMs: config.CONNECT_TIMEOUT_MS,
    });
    served.set(upstream.name, { session, subscriptions });
    session.start();
  };

  const reconcile = (name: string) => {
    if (!inScope(name)) return;
    const upstream = projection.upstream(name);
    const current = served.get(name);
    if (upstream && current && isDeepStrictEqual(current.session.transport, upstream.transport)) return;
    void stop(name).then(() => upstream && start(upstream));
  };

  projection.onApplied((event) => {
    if (event.type.startsWith("upstream.")) reconcile(event.data.name);
  });
  const follower = await followRegistry(nc, projection, logger.child({ part: "follower" }));

  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_req, reply) => {
    const ready = !nc.isClosed() && follower.isCaughtUp();
    return reply.status(ready ? 200 : 503).send({ status: ready ? "ready" : "not-ready", upstreams: [...served.keys()] });
  });

  return {
    app,
    projection,
    follower,
    served: () => [...served.keys()],
    async close() {
      await app.close();
      await follower.stop();
      await Promise.all([...served.keys()].map(stop));
    },
  };
}
