import type { Logger } from "@manifold/telemetry";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

/** The stream behind a NATS KV bucket. */
export const bucketStream = (bucket: string) => `KV_${bucket}`;

/**
 * Streams and buckets are created with the configured replica count (`NATS_STREAM_REPLICAS`), but
 * no service changes the count of one that exists: a service started with another value (say the
 * default 1 beside services set to 3) would otherwise scale the registry's log down and up again
 * on every restart. A difference is logged, once at start; scaling an existing stream is an
 * operator's step (docs/operations.md, "A three-node NATS cluster").
 */
export async function warnOnReplicaDrift(nc: NatsConnection, streams: readonly string[], configured: number, logger: Logger): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const stream of streams) {
    const actual = (await jsm.streams.info(stream).catch(() => undefined))?.config.num_replicas;
    if (actual !== undefined && actual !== configured) {
      logger.warn({ stream, configured, actual }, "stream keeps its replica count, which differs from NATS_STREAM_REPLICAS");
    }
  }
}
