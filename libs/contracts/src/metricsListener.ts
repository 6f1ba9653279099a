import { listenerTransport, type ListenerTls } from "./listenerTls.js";

/**
 * The server options of a listener that serves only probes and `/metrics` (the gateway's and the
 * registry's metrics ports, the connector's only port), for fastify. A scrape is one small GET
 * answered in milliseconds, so everything else is let go soon: headers not all in after 5 s, a
 * request not all in after 10 s (Node checks each second), a body past 1 KiB, headers past 8 KiB,
 * a kept-alive connection idle for 5 s (Prometheus opens another for its next scrape). Before,
 * fastify's defaults held a request dribbled a byte a second for ever and an idle connection 72 s
 * (`metricsListenerFlood.int`). How many connections it holds is each service's
 * `…_MAX_CONNECTIONS` setting, applied with `limitConnections`.
 */
export const METRICS_LISTENER_OPTIONS = {
  bodyLimit: 1_024,
  keepAliveTimeout: 5_000,
  requestTimeout: 10_000,
  http: { maxHeaderSize: 8 * 1_024, headersTimeout: 5_000, requestTimeout: 10_000, connectionsCheckingInterval: 1_000 },
  // close() does not wait for a scraper's kept-alive connection.
  forceCloseConnections: true,
} as const;

/**
 * `METRICS_LISTENER_OPTIONS` over HTTPS when the service's own listener serves it (the same
 * certificate): scrapes name every consumer, virtual server, tool and upstream, and probes and
 * scrapes then cross the network encrypted, as the service's other traffic does.
 */
export const metricsListenerOptions = (tls: ListenerTls | undefined) => ({ ...METRICS_LISTENER_OPTIONS, ...listenerTransport({ ...METRICS_LISTENER_OPTIONS.http }, tls) });

/**
 * Connections a metrics listener holds by default: a few scrapers (an HA pair of Prometheus
 * servers, an agent, an operator's curl) need one each; at the bound a new one takes the place of
 * the longest-open silent or idle one (3,000 silent connections from one peer took every
 * descriptor of a process allowed 1,024, and every scrape was reset).
 */
export const METRICS_MAX_CONNECTIONS = 64;
