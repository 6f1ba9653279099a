import { AuditRecord, AuditStream, auditSubject, type AuditQuery } from "@manifold/contracts";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";

export interface AuditPage {
  items: (AuditRecord & { sequence: number })[];
  /** Pass as `after` for the next page; absent when the stream has nothing further. */
  next?: number;
}

const matches = (r: AuditRecord, q: AuditQuery) =>
  (!q.consumer || r.consumer === q.consumer || r.consumer === `consumer:${q.consumer}`) &&
  (!q.tool || r.exposedTool === q.tool || r.tool === q.tool) &&
  (!q.upstream || r.upstream === q.upstream) &&
  (!q.outcome || r.outcome === q.outcome) &&
  (!q.until || r.at <= q.until);

/**
 * Reads the audit stream from a start point (after a sequence, since a time, or the
 * beginning), filtered by virtual server on the server side and by the rest here, one page
 * at a time. Paging is by stream sequence, so a page is stable while records keep arriving.
 */
export async function queryAudit(nc: NatsConnection, query: AuditQuery): Promise<AuditPage> {
  const jsm = await jetstreamManager(nc);
  const state = (await jsm.streams.info(AuditStream.name)).state;
  const start = Math.max(query.after === undefined ? state.first_seq : query.after + 1, state.first_seq);
  if (state.messages === 0 || start > state.last_seq) return { items: [] };
  const consumer = await jetstream(nc).consumers.get(AuditStream.name, {
    filter_subjects: query.virtualServer ? auditSubject(query.virtualServer) : AuditStream.subjects,
    ...(query.after === undefined && query.since
      ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: query.since }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start }),
  });
  // Nothing at or after the start point: answer now rather than wait for a message.
  if ((await consumer.info()).num_pending === 0) return { items: [] };
  const items: AuditPage["items"] = [];
  let lastSeen = 0;
  let more = false;
  const messages = await consumer.consume({ max_messages: Math.min(query.limit * 2, 1_000) });
  const stop = setTimeout(() => void messages.close(), 2_000);
  try {
    for await (const message of messages) {
      lastSeen = message.seq;
      const record = AuditRecord.safeParse(message.json());
      if (record.success && (!query.since || record.data.at >= query.since) && matches(record.data, query)) {
        items.push({ ...record.data, sequence: message.seq });
      }
      if (query.until && record.success && record.data.at > query.until) break;
      if (items.length >= query.limit) {
        more = message.info.pending > 0;
        break;
      }
      if (message.info.pending === 0) break;
    }
  } finally {
    clearTimeout(stop);
    await messages.close();
  }
  return more ? { items, next: lastSeen } : { items };
}
