import { AuditStream } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { DiscardPolicy, JetStreamApiError, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { checkedStream, streamInfo, waitForStream } from "./streams.js";

export interface AuditRetention {
  maxAgeMs: number;
  maxBytes: number;
}

/**
 * The audit stream, made by the registry alone with its configured retention: records age out
 * after `maxAgeMs` and the oldest go first once it holds `maxBytes`. No identity may change it
 * once made: the right to update its config is the right to widen what it captures to the calls
 * and their pass-through credentials, and the registry reads it (busAuthorization.e2e). So an
 * existing stream's retention that differs from the configured one is logged, and applying it is
 * an operator's step (docs/operations.md, "The audit trail"), like its replica count.
 */
export async function ensureAuditStream(nc: NatsConnection, retention: AuditRetention, replicas: number, logger: Logger): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const limits = { max_age: retention.maxAgeMs * 1_000_000, max_bytes: retention.maxBytes };
  const existing = await streamInfo(jsm, AuditStream.name);
  if (existing) {
    const actual = { max_age: existing.config.max_age, max_bytes: existing.config.max_bytes };
    if (actual.max_age !== limits.max_age || actual.max_bytes !== limits.max_bytes) {
      logger.warn({ stream: AuditStream.name, configured: limits, actual }, "the audit stream keeps its retention, which differs from AUDIT_MAX_AGE_HOURS / AUDIT_MAX_BYTES");
    }
    return;
  }
  const config = { name: AuditStream.name, subjects: [AuditStream.subjects], storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, ...limits, num_replicas: replicas };
  await jsm.streams.add(config).catch(async (error: unknown) => {
    // Created meanwhile by another registry replica: as long as it is Manifold's.
    if (!(error instanceof JetStreamApiError)) throw error;
    checkedStream(await jsm.streams.info(AuditStream.name));
  });
}

/** A gateway appends to the audit stream once the registry has made it (checked): records are captured from the first call. */
export async function auditStreamReady(nc: NatsConnection, logger: Logger): Promise<void> {
  await waitForStream(await jetstreamManager(nc), AuditStream.name, logger);
}
