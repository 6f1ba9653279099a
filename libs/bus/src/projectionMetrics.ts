import { RegistryStream } from "@manifold/contracts";
import { Counter, Gauge, type Registry } from "@manifold/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { EventSink } from "./follower.js";

/**
 * Registry events applied by this node, its projection's sequence, and how far it lags
 * behind the stream (read from JetStream at scrape time).
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
  new Gauge({
    name: "manifold_projection_lag_events",
    help: "Registry events in the stream not yet applied on this node.",
    registers: [registry],
    async collect() {
      const jsm = await jetstreamManager(nc);
      const last = (await jsm.streams.info(RegistryStream.name)).state.last_seq;
      this.set(Math.max(0, last - projection.sequence));
    },
  });
}
