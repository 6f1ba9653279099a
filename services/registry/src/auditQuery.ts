import { AuditRecord, AuditStream, auditSubject, type AuditQuery } from "@manifold/contracts";
import type { NatsConnection } from "@nats-io/transport-node";
import { readPage, type Page } from "./streamPage.js";

export type AuditPage = Page<AuditRecord & { sequence: number }>;

const matches = (r: AuditRecord, q: AuditQuery) =>
  (!q.consumer || r.consumer === q.consumer || r.consumer === `consumer:${q.consumer}`) &&
  (!q.tool || r.exposedTool === q.tool || r.tool === q.tool) &&
  (!q.upstream || r.upstream === q.upstream) &&
  (!q.outcome || r.outcome === q.outcome) &&
  (!q.until || r.at <= q.until);

/**
 * Reads the audit stream from a start point (after a sequence, since a time, or the
 * beginning), filtered by virtual server on the server side and by the rest here.
 */
export function queryAudit(nc: NatsConnection, query: AuditQuery): Promise<AuditPage> {
  return readPage(nc, {
    stream: AuditStream.name,
    subjects: query.virtualServer ? auditSubject(query.virtualServer) : AuditStream.subjects,
    after: query.after,
    since: query.since,
    limit: query.limit,
    pick(message, stop) {
      const record = AuditRecord.safeParse(message.json());
      if (!record.success) return undefined;
      if (query.until && record.data.at > query.until) stop();
      if ((query.since && record.data.at < query.since) || !matches(record.data, query)) return undefined;
      return { ...record.data, sequence: message.seq };
    },
  });
}
