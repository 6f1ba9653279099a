import type { AuditRecord } from "@manifold/contracts";
import { principalName, type Principal } from "@manifold/domain";

/** Who called what, as a record names them: the same for every call of one caller to one tool. */
export interface AuditNames {
  readonly principal: Principal;
  readonly virtualServer: string;
  readonly environment: string;
  readonly exposedTool: string;
  readonly tool: string;
  readonly upstream: string;
}

/** The text of a record's naming members, by principal (object), then each name in record order. */
type Level = Map<string, Level | string>;
/** Fragments kept at most (the tools, callers and names an attacker may vary are the caller's to spend); past it, all are made again. */
const MAX_FRAGMENTS = 10_000;
let fragments = new WeakMap<Principal, Level>();
let count = 0;

/**
 * `,"consumer":…,"upstream":…` as JSON.stringify writes those members, made once per caller and
 * tool: JSON.stringify of a whole record cost ~12,000 instructions a call (most of it escaping the
 * same names again), about a thirtieth of the gateway's instructions per call (callgrind).
 */
function namesJson(names: AuditNames): string {
  let top = fragments.get(names.principal);
  if (!top) fragments.set(names.principal, (top = new Map()));
  const level = below(below(below(below(top, names.virtualServer), names.environment), names.exposedTool), names.tool);
  const cached = level.get(names.upstream) as string | undefined;
  if (cached !== undefined) return cached;
  if (++count > MAX_FRAGMENTS) {
    fragments = new WeakMap();
    count = 1;
    return namesJson(names);
  }
  const text =
    `,"consumer":${JSON.stringify(principalName(names.principal))},"virtualServer":${JSON.stringify(names.virtualServer)}` +
    `,"environment":${JSON.stringify(names.environment)},"exposedTool":${JSON.stringify(names.exposedTool)}` +
    `,"tool":${JSON.stringify(names.tool)},"upstream":${JSON.stringify(names.upstream)}`;
  level.set(names.upstream, text);
  return text;
}

function below(level: Level, name: string): Level {
  let next = level.get(name) as Level | undefined;
  if (!next) level.set(name, (next = new Map()));
  return next;
}

/** The record's time as JSON, made once per millisecond like the time itself (`isoNow`). */
let atText = "";
let atJson = "";
const atOf = (at: string): string => (at === atText ? atJson : ((atText = at), (atJson = JSON.stringify(at))));

/** A number as JSON writes it (a non-finite one as null). */
const jsonNumber = (n: number): string => (Number.isFinite(n) ? String(n) : "null");

/**
 * A record without values (`arguments`, `result`, `valuesOmitted`) as JSON text, byte for byte
 * what `JSON.stringify(record)` writes (`auditEncoding.unit.spec.ts`): the members in the record's
 * order, the names from a per-caller cache.
 */
export function encodeAuditRecord(record: AuditRecord, names: AuditNames): string {
  const outcome = record.outcome === "ok" ? '"ok"' : JSON.stringify(record.outcome);
  let text = `{"at":${atOf(record.at)}${namesJson(names)},"durationMs":${jsonNumber(record.durationMs)},"outcome":${outcome},"argumentBytes":${jsonNumber(record.argumentBytes)},"resultBytes":${jsonNumber(record.resultBytes)}`;
  if (record.errorCode !== undefined) text += `,"errorCode":${JSON.stringify(record.errorCode)}`;
  if (record.errorReason !== undefined) text += `,"errorReason":${JSON.stringify(record.errorReason)}`;
  if (record.traceId !== undefined) text += `,"traceId":${JSON.stringify(record.traceId)}`;
  return `${text}}`;
}
