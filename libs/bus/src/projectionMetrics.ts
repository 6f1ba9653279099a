import { RegistryStream } from "@manifold/contracts";
import { Counter, Gauge, type Registry } from "@manifold/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { EventSink } from "./follower.js";

/**
 * Registry events applied by this node, its projection's sequence, and how far it lags
 * behind the stream (read from JetStream when scraped, at most once a second).
 */
export function observeProjection(registry: Registry, nc: NatsConnection, projection: EventSink & { onApplied(l: (e: { type: string }) => void): unknown }): void {
  const applied = new Counter({
    name: "manifold_registry_events_applied_total",
    help: "Registry events applied to this node's projection, by event type.",
    labelNames: ["type"],
    registers: [registry],
  });
  projection.onApplied((event) => applied.inc({ type: event.type }));
  new Gauge({
    name: "manifold_projection_sequence",
    help: "Stream sequence of the last registry event applied on this node.",
    registers: [registry],
    collect() {
      this.set(projection.sequence);
    },
  });
  const streamEnd = lastSequenceLookup(nc);
  new Gauge({
    name: "manifold_projection_lag_events",
    help: "Registry events in the stream not yet applied on this node.",
    registers: [registry],
    async collect() {
      this.set(Math.max(0, (await streamEnd()) - projection.sequence));
    },
  });
}

/** How long one lookup of the stream's end answers every scrape. */
const LOOKUP_MS = 1_000;

/**
 * The registry stream's last sequence, looked up at most once a second however often `/metrics`
 * is scraped (the registry serves it without a token on its admin port): each scrape made two
 * JetStream API requests, so 200 scrapes at once were 400 requests to nats-server. Concurrent
 * scrapes share one lookup, and a failed one answers its second too: JetStream failing is when
 * it can least afford a request per scrape. Timed on the monotonic clock (a wall clock stepped back
 * would keep one answer for as long).
 */
function lastSequenceLookup(nc: NatsConnection): () => Promise<number> {
  let lookup: { at: number; sequence: Promise<number> } | undefined;
  return () => {
    const now = performance.now();
    if (lookup && now - lookup.at < LOOKUP_MS) return lookup.sequence;
    const sequence = jetstreamManager(nc, { checkAPI: false })
      .then((jsm) => jsm.streams.info(RegistryStream.name))
      .then((info) => info.state.last_seq);
    // Kept for its second whatever it settles to; this only keeps a failure from going unhandled.
    sequence.catch(() => undefined);
    lookup = { at: now, sequence };
    return sequence;
  };
}
