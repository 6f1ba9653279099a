import { AuditStream, HealthStream, KvBucket, RegistryStream } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { JetStreamApiError, type JetStreamManager, type StreamConfig, type StreamInfo } from "@nats-io/jetstream";

const STREAM_NOT_FOUND = 10059;
const RETRY_MS = 250;
/** Attempts between two logs of a wait (10 s). */
const LOG_EVERY = 40;

/** What each of Manifold's streams captures, fixed in code. */
const CAPTURES: Record<string, string> = {
  [RegistryStream.name]: RegistryStream.subjects,
  [HealthStream.name]: HealthStream.subjects,
  [AuditStream.name]: AuditStream.subjects,
  ...Object.fromEntries(Object.values(KvBucket).map((bucket) => [`KV_${bucket}`, `$KV.${bucket}.>`])),
};

/**
 * A stream as Manifold made it, or an error that stops the service. Whoever creates a stream
 * first picks what it captures: one made under a stolen identity before Manifold's services, say
 * the audit stream also capturing the call subjects, would hand its readers the agents'
 * pass-through credentials. It picks where the captured messages go too: republished, nats-server
 * publishes each again on any subject, past its writer's permissions (a connector's health report
 * as a gateway's session closing); with its subjects rewritten, one upstream's report is stored
 * as another's. So a stream capturing anything else, fed from another stream, republishing or
 * rewriting what it captures, is refused by name; an operator removes it (docs/security.md).
 */
export function checkedStream(info: StreamInfo): StreamInfo {
  const { name, subjects = [], sources, mirror, republish, subject_transform: rewrite } = info.config;
  const want = CAPTURES[name];
  if (want === undefined) return info;
  const wrong = [
    subjects.length !== 1 || subjects[0] !== want ? `captures ${JSON.stringify(subjects)}, not only ${want}` : "",
    (sources?.length ?? 0) > 0 || mirror ? "copies another stream" : "",
    republish ? "republishes what it captures" : "",
    rewrite ? "rewrites the subjects it captures" : "",
  ].filter(Boolean);
  if (wrong.length > 0) throw new Error(`stream ${name} ${wrong.join(" and ")}: Manifold did not make it so; remove it (docs/security.md)`);
  return info;
}

/** A stream's info, checked, or undefined when it does not exist. */
export async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return checkedStream(await jsm.streams.info(name));
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === STREAM_NOT_FOUND) return undefined;
    throw error;
  }
}

/**
 * The stream `config` names: made from `config` by whichever of its writers comes first, or the
 * one there, checked (`created`: made here).
 */
export async function ensureStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<{ info: StreamInfo; created: boolean }> {
  const existing = await streamInfo(jsm, config.name);
  if (existing) return { info: existing, created: false };
  try {
    return { info: await jsm.streams.add(config), created: true };
  } catch (error) {
    // Created meanwhile by another node: as long as it is Manifold's.
    if (!(error instanceof JetStreamApiError)) throw error;
    return { info: checkedStream(await jsm.streams.info(config.name)), created: false };
  }
}

/**
 * A stream's info once it exists, checked. Only the registry creates streams (its log, the audit
 * and the health stream, the gateways' KV buckets): a node that only reads one, or only appends
 * to it, waits for it instead, retrying every 250 ms and saying so every 10 s.
 */
export async function waitForStream(jsm: JetStreamManager, name: string, logger: Logger): Promise<StreamInfo> {
  for (let attempt = 0; ; attempt++) {
    const info = await streamInfo(jsm, name);
    if (info) return info;
    if (attempt % LOG_EVERY === 0) logger.info({ stream: name, waitedMs: attempt * RETRY_MS }, "waiting for the registry to create the stream (start or upgrade the registry first)");
    await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
  }
}
