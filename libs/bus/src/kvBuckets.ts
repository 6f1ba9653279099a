import { KV_BUCKETS, KvBucket } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { DiscardPolicy, RetentionPolicy, StorageType, jetstreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { bucketStream } from "./replicas.js";
import { ensureStream, waitForStream } from "./streams.js";

/**
 * The gateways' buckets, made by the registry alone with their settings (`KV_BUCKETS`), as nats.js's
 * `Kvm.create` makes a bucket; one that exists is kept if it is Manifold's (`checkedStream`), whatever
 * its ttl or history (one an older gateway made: a rolling upgrade).
 */
export async function ensureKvBuckets(nc: NatsConnection, replicas: number, logger: Logger): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const bucket of Object.values(KvBucket)) {
    const { history, maxAgeMs } = KV_BUCKETS[bucket];
    const { info, created } = await ensureStream(jsm, {
      name: bucketStream(bucket),
      subjects: [`$KV.${bucket}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.New,
      max_msgs_per_subject: history,
      max_bytes: -1,
      max_msg_size: -1,
      allow_direct: true,
      allow_rollup_hdrs: true,
      num_replicas: replicas,
      ...(maxAgeMs ? { max_age: maxAgeMs * 1_000_000 } : {}),
    });
    // A shorter max age (an older gateway's session idle timeout or flow TTL) cuts the gateways' own setting short.
    const keptMs = info.config.max_age / 1_000_000;
    if (!created && keptMs !== (maxAgeMs ?? 0)) {
      logger.warn({ stream: info.config.name, keptMs, wantedMs: maxAgeMs ?? 0 }, "the bucket keeps the max age it was made with; entries older are gone whatever the gateways' settings (docs/operations.md)");
    }
  }
}

/**
 * A gateway's bucket once the registry has made it, checked (open it with `Kvm.open` and the
 * info's `allow_direct`): a gateway started first waits, not serving meanwhile.
 */
export async function kvBucketReady(nc: NatsConnection, bucket: KvBucket, logger: Logger): Promise<StreamInfo> {
  return waitForStream(await jetstreamManager(nc), bucketStream(bucket), logger);
}
