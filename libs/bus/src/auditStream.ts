import { AuditStream } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { ensureStream, waitForStream } from "./streams.js";

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
  const limits = { max_age: retention.maxAgeMs * 1_000_000, max_bytes: retention.maxBytes };
  const config = { name: AuditStream.name, subjects: [AuditStream.subjects], storage: StorageType.File, retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, ...limits, num_replicas: replicas };
  const { info, created } = await ensureStream(await jetstreamManager(nc), config);
  const actual = { max_age: info.config.max_age, max_bytes: info.config.max_bytes };
  if (!created && (actual.max_age !== limits.max_age || actual.max_bytes !== limits.max_bytes)) {
    logger.warn({ stream: AuditStream.name, configured: limits, actual }, "the audit stream keeps its retention, which differs from AUDIT_MAX_AGE_HOURS / AUDIT_MAX_BYTES");
  }
}

/** A gateway appends to the audit stream once the registry has made it (checked): records are captured from the first call. */
export async function auditStreamReady(nc: NatsConnection, logger: Logger): Promise<void> {
  await waitForStream(await jetstreamManager(nc), AuditStream.name, logger);
}
