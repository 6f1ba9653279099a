import { AuditRecord, AuditStream, auditSubject, type AuditQuery } from "@manifold/contracts";
import { jsonOrNothing } from "@manifold/bus";
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
 * How far a record's stamp may be from when the stream stored it. Records are stored in the order
 * gateways publish them, each stamped by its own replica's clock after its answer (batched up to
 * 20 ms), while the stream starts a read by its own clock. So the read starts this much before
 * `since` (a record stamped after `since` but stored before it, by a replica whose clock runs
 * ahead of the bus's, was never read) and stops only at a record stamped this much past `until`
 * (the first record past `until` stopped it, and a replica's record stamped before it but stored
 * after it was never returned, nor a `next`). Records outside the window are still left out.
 */
const CLOCK_SLACK_MS = 60_000;

/**
 * Reads the audit stream from a start point (after a sequence, since a time, or the
 * beginning), filtered by virtual server on the server side and by the rest here.
 */
export function queryAudit(nc: NatsConnection, query: AuditQuery): Promise<AuditPage> {
  // As a number: a text comparison with a year past 9999 (`+010000-…`) would stop at every record.
  const stopAfter = query.until ? Date.parse(query.until) + CLOCK_SLACK_MS : undefined;
  return readPage(nc, {
    stream: AuditStream.name,
    subjects: query.virtualServer ? auditSubject(query.virtualServer) : AuditStream.subjects,
    after: query.after,
    since: query.since === undefined ? undefined : new Date(Math.max(Date.parse(query.since) - CLOCK_SLACK_MS, 0)).toISOString(),
    limit: query.limit,
    pick(message, stop) {
      // A gateway's word: one record that is no JSON failed every page that reached it.
      const record = AuditRecord.safeParse(jsonOrNothing(message.string()));
      if (!record.success) return undefined;
      if (stopAfter !== undefined && Date.parse(record.data.at) > stopAfter) stop();
      if ((query.since && record.data.at < query.since) || !matches(record.data, query)) return undefined;
      return { ...record.data, sequence: message.seq };
    },
  });
}
