import { collectDefaultMetrics, Registry } from "prom-client";

export { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The sliver of fastify `serveMetrics` needs, so this library does not depend on fastify. */
export interface FastifyLikeApp {
  get(
    path: string,
    handler: (request: unknown, reply: { header(name: string, value: string): { send(body: string): unknown } }) => Promise<unknown>,
  ): unknown;
}

/** Seconds, from half a millisecond (the hot path's own cost) to the longest call budgets. */
export const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** One registry per service: its own metrics plus the standard process metrics, all labelled with `service`. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Serves the registry on `GET /metrics` in the Prometheus text format. */
export function serveMetrics(app: FastifyLikeApp, registry: Registry): void {
  app.get("/metrics", async (_request, reply) => reply.header("content-type", registry.contentType).send(await registry.metrics()));
}
