import { z } from "zod";
import { ResourceName } from "./names.js";

/** Every tools/call leaves one record on its own stream, apart from the registry's log. */
export const AuditStream = { name: "MANIFOLD_AUDIT", subjects: "manifold.audit.>" } as const;
export const auditSubject = (virtualServer: string) => `manifold.audit.${virtualServer}`;

/** `input_required`: a 2026-07-28 request answered with a round of questions for its agent; its retry is recorded on its own. */
export const AuditOutcome = z.enum(["ok", "error", "input_required"]);

/** What happened, never what was said: sizes of arguments and results, not their values. */
export const AuditRecord = z.strictObject({
  at: z.iso.datetime(),
  consumer: z.string(),
  virtualServer: z.string(),
  environment: z.string(),
  exposedTool: z.string(),
  tool: z.string(),
  upstream: z.string(),
  durationMs: z.number().nonnegative(),
  outcome: AuditOutcome,
  errorCode: z.string().optional(),
  /** The error's sub-reason (`data.reason`: `invalid_result`, `result_too_deep`, …), one of Manifold's constants. */
  errorReason: z.string().max(64).optional(),
  traceId: z.string().optional(),
  argumentBytes: z.number().int().nonnegative(),
  resultBytes: z.number().int().nonnegative(),
  /** Only when the virtual server records values, with its configured fields redacted. */
  arguments: z.unknown().optional(),
  result: z.unknown().optional(),
  /** Set when values were to be recorded but would not fit in one audit message, or nest past the result depth limit. */
  valuesOmitted: z.enum(["too_large", "too_deep"]).optional(),
});
export type AuditRecord = z.infer<typeof AuditRecord>;

const asRecordTime = (at: string) => new Date(at).toISOString();

export const AuditQuery = z.strictObject({
  /** Becomes a NATS subject token: a valid name or nothing. */
  virtualServer: ResourceName.optional(),
  consumer: z.string().min(1).max(256).optional(),
  tool: z.string().min(1).max(256).optional(),
  upstream: ResourceName.optional(),
  outcome: AuditOutcome.optional(),
  /**
   * Compared with records' `at` as text, so written as they are (`toISOString`: milliseconds,
   * `Z`): `…T10:00:00Z` sorted after `…T10:00:00.500Z`, and hid up to a second of records.
   */
  since: z.iso.datetime().transform(asRecordTime).optional(),
  until: z.iso.datetime().transform(asRecordTime).optional(),
  /** Stream sequence to continue after (from the previous page's `next`). */
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1_000).default(100),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

/** Per virtual server: whether audit records keep argument and result values, and which fields to blank. */
export const AuditSettings = z.strictObject({
  recordValues: z.boolean(),
  /** Field names (any depth, case-insensitive) replaced by "[redacted]" in recorded values. */
  redactFields: z.array(z.string().min(1).max(128)).max(100).default([]),
});
export type AuditSettings = z.infer<typeof AuditSettings>;
