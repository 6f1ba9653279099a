import { AuditStream } from "@manifold/contracts";
import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

const STREAM_NOT_FOUND = 10059;

export interface AuditRetention {
  maxAgeMs: number;
  maxBytes: number;
}

/**
 * The audit stream: records age out after `maxAgeMs` and the oldest go first once it holds
 * `maxBytes`. The registry applies its configured retention (create or update); other nodes
 * only create it when missing, so records are captured from the first call. `replicas` applies
 * on creation only; an update keeps the stream's count.
 */
export async function ensureAuditStream(nc: NatsConnection, retention: AuditRetention, update: boolean, replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    subjects: [AuditStream.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: retention.maxAgeMs * 1_000_000,
    max_bytes: retention.maxBytes,
  };
  try {
    await jsm.streams.info(AuditStream.name);
    if (update) await jsm.streams.update(AuditStream.name, config);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND)) throw error;
    await jsm.streams.add({ name: AuditStream.name, ...config, num_replicas: replicas }).catch(async (err: unknown) => {
      if (!(err instanceof JetStreamApiError)) throw err;
      await jsm.streams.info(AuditStream.name);
    });
  }
}
