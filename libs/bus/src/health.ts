import { HealthReport, HealthStream, Subjects } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { jsonOrNothing } from "./messageJson.js";
import { followStream } from "./streamSubscription.js";
import { ensureStream, waitForStream } from "./streams.js";

/** Keeps only the last report per (upstream, replica); reports older than a day are dropped. */
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

/** Publishes a replica's health report; a lost report is repaired by the next heartbeat. */
export function healthPublisher(nc: NatsConnection, logger: Logger): (report: HealthReport) => void {
  const js = jetstream(nc);
  return (report) => {
    js.publish(Subjects.upstreamHealth(report.upstream, report.replica), JSON.stringify(report)).catch((err: unknown) =>
      logger.debug({ err }, "health report not stored"),
    );
  };
}

/**
 * Delivers the last report of every (upstream, replica), then every new one; after a reconnect
 * the last reports again (see `followStream`: nats.js's own recovery would stall for ~40 s). The
 * stream is created by its writers (connectors) and the registry; a gateway waits for it.
 */
export async function followHealth(nc: NatsConnection, onReport: (report: HealthReport) => void, logger: Logger): Promise<() => Promise<void>> {
  await waitForStream(await jetstreamManager(nc), HealthStream.name, logger);
  const subscription = await followStream(nc, {
    stream: HealthStream.name,
    // Last per subject needs a filter; `>` keeps it out of the create's subject (busPermissions.ts).
    from: () => ({ deliver_policy: DeliverPolicy.LastPerSubject, filter_subject: ">" }),
    apply(message) {
      const parsed = HealthReport.safeParse(jsonOrNothing(message.string()));
      // The subject is what the bus let its sender publish on (a connector's identity names its upstreams); the body is not.
      if (parsed.success && message.subject === Subjects.upstreamHealth(parsed.data.upstream, parsed.data.replica)) onReport(parsed.data);
      else logger.warn({ subject: message.subject }, "skipping unreadable health report, or one naming another upstream or replica than its subject");
    },
    logger,
  });
  return () => subscription.stop();
}
