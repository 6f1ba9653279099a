import { HealthReport, HealthStream, Subjects } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { DeliverPolicy, RetentionPolicy, StorageType, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { jsonOrNothing } from "./messageJson.js";
import { followStream } from "./streamSubscription.js";
import { ensureStream, streamInfo, waitForStream } from "./streams.js";

/**
 * Keeps only the last report per (upstream, replica); reports older than a day are dropped. Made by
 * the registry alone: whoever creates a stream picks where what it captures goes (`checkedStream`),
 * and a connector's identity that could create it made one republishing its reports past its
 * permissions. Connectors publish without it (a report it missed is repaired by the next heartbeat).
 */
export async function ensureHealthStream(nc: NatsConnection, replicas = 1): Promise<void> {
  await ensureStream(await jetstreamManager(nc), {
    name: HealthStream.name,
    subjects: [HealthStream.subjects],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: 1,
    max_age: 24 * 60 * 60 * 1_000_000_000,
    num_replicas: replicas,
  });
}

/** The health stream as the registry made it, when it exists: a connector stops on one Manifold did not make (`checkedStream`). */
export async function checkHealthStream(nc: NatsConnection): Promise<void> {
  await streamInfo(await jetstreamManager(nc), HealthStream.name);
}

/**
 * Publishes a replica's health report; a lost report is repaired by the next heartbeat. A core
 * publish (the stream captures it all the same): with a reply subject for JetStream's ack, each
 * gateway it reaches would hold that subject for an hour, as a role allowed to answer
 * (`allow_responses`; see `settleDelivery`).
 */
export function healthPublisher(nc: NatsConnection): (report: HealthReport) => void {
  return (report) => nc.publish(Subjects.upstreamHealth(report.upstream, report.replica), JSON.stringify(report));
}

/** A report believed: readable, and on the subject of the upstream and replica it names (what the bus let its sender publish on). */
function believed(subject: string, data: string, logger: Logger): HealthReport | undefined {
  const parsed = HealthReport.safeParse(jsonOrNothing(data));
  if (parsed.success && subject === Subjects.upstreamHealth(parsed.data.upstream, parsed.data.replica)) return parsed.data;
  logger.warn({ subject }, "skipping unreadable health report, or one naming another upstream or replica than its subject");
  return undefined;
}

/**
 * Every health report from now on, as connectors publish them: a gateway only shows health (a
 * metric), so it does not read the stream back, which would take a consumer (`readStream`). It
 * knows each replica's health within one heartbeat of starting.
 */
export function listenHealth(nc: NatsConnection, onReport: (report: HealthReport) => void, logger: Logger): () => Promise<void> {
  const subscription = nc.subscribe(HealthStream.subjects, {
    callback: (_error, msg) => {
      const report = believed(msg.subject, msg.string(), logger);
      if (report) onReport(report);
    },
  });
  return async () => subscription.unsubscribe();
}

/**
 * Delivers the last report of every (upstream, replica), then every new one; after a reconnect
 * the last reports again (see `followStream`: nats.js's own recovery would stall for ~40 s). The
 * registry's (its identity alone may hold consumers, and create the stream).
 */
export async function followHealth(nc: NatsConnection, onReport: (report: HealthReport) => void, logger: Logger): Promise<() => Promise<void>> {
  await waitForStream(await jetstreamManager(nc), HealthStream.name, logger);
  const subscription = await followStream(nc, {
    stream: HealthStream.name,
    from: () => ({ deliver_policy: DeliverPolicy.LastPerSubject }),
    apply(message) {
      const report = believed(message.subject, message.string(), logger);
      if (report) onReport(report);
    },
    logger,
  });
  return () => subscription.stop();
}
