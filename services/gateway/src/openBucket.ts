import { kvBucketReady, type NatsConnection } from "@manifold/bus";
import type { KvBucket } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { jetstream } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";

/**
 * One of the gateways' buckets, opened once the registry has made it (a gateway may not create
 * one: busPermissions.ts). Waits meanwhile, so a gateway started first serves nothing until then.
 */
export async function openBucket(nc: NatsConnection, bucket: KvBucket, logger: Logger, timeoutMs?: number): Promise<KV> {
  const info = await kvBucketReady(nc, bucket, logger);
  return new Kvm(jetstream(nc, timeoutMs ? { timeout: timeoutMs } : {})).open(bucket, { allow_direct: info.config.allow_direct ?? false });
}
