import { EXPOSED_NAME, JsonLimits, auditSubject, jsonTextTooDeep, type AuditRecord, type Era } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import { principalName, redactFields, type CatalogProjection, type Principal } from "@manifold/domain";
import { toJsonRpcError, type JsonRpcError } from "./jsonRpc.js";
import { encodeAuditRecord } from "./auditEncoding.js";
import type { AnswerDropped } from "./answerRelay.js";
import { Counter, DURATION_BUCKETS, HotCounter, HotHistogram, type Registry } from "@manifold/telemetry";

export interface CallFacts {
  virtualServer: string;
  environment: string;
  principal: Principal;
  exposedTool: string;
  tool: string;
  upstream: string;
  startedAt: number;
  argumentBytes: number;
  resultBytes: number;
  /** This request paused the call for its agent's input (a 2026-07-28 `input_required` answer). */
  paused?: boolean;
  /** Set when the call failed; a tool result with isError is a successful call. */
  errorCode?: string | undefined;
  errorReason?: unknown;
  /** The call's trace, when it was sampled. */
  traceId?: string | undefined;
  /** Values, kept in the audit record only where the virtual server asks for it. */
  argumentsValue?: unknown;
  resultText?: string | undefined;
}

/**
 * A requested tool's name as it is recorded before it has routed: the caller's own text, of any
 * length, would be kept by the audit stream every tenant shares (a 900 KB name a record). A name
 * no tool can have (`ExposedToolName`) is recorded as `(invalid)`.
 */
export const requestedToolName = (name: unknown): string => (typeof name !== "string" ? "(none)" : EXPOSED_NAME.test(name) ? name : "(invalid)");

/**
 * The facts of a call about to be served; a failure is noted in them by `noteFailure`. Both lanes
 * start every call here, so both record the same way. Every member is set here, so a call's facts
 * keep one shape as they fill in.
 */
export function beginCall(virtualServer: string, environment: string, principal: Principal, exposedTool: string): CallFacts {
  return {
    virtualServer,
    environment,
    principal,
    exposedTool,
    tool: "(none)",
    upstream: "(none)",
    startedAt: performance.now(),
    argumentBytes: 0,
    resultBytes: 0,
    paused: false,
    errorCode: undefined,
    errorReason: undefined,
    traceId: undefined,
    argumentsValue: undefined,
    resultText: undefined,
  };
}

/**
 * An error's sub-reason as recorded and counted: Manifold's own constants are short snake_case
 * names; anything else (none is known) is left out rather than kept as a series of its own.
 */
const REASON = /^[a-z][a-z_]{0,63}$/;
const reasonOf = (reason: unknown): string | undefined => (typeof reason === "string" && REASON.test(reason) ? reason : undefined);

/** Notes a call's failure in its facts, as the JSON-RPC error the agent (of `era`) will see (which it returns). */
export function noteFailure(facts: CallFacts, error: unknown, era: Era): JsonRpcError {
  const rpc = toJsonRpcError(error, era);
  facts.errorCode = String(rpc.data?.code ?? rpc.code);
  facts.errorReason = rpc.data?.reason;
  return rpc;
}

/**
 * The audit record's `at`, made once per millisecond: `Date.prototype.toISOString` costs ~2 µs
 * here, and the calls answered in one turn are recorded together, mostly within the same one.
 */
let isoMs = NaN;
let iso = "";
function isoNow(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}

/** Buffer.from, not TextEncoder: small strings are sliced from a shared pool, ~8× faster per record. */
const encode = (text: string): Uint8Array => Buffer.from(text);

/**
 * Audit records wait this long, or until this many are pending, and then go out together: one
 * write to nats-server for all of them instead of one per call's turn. Per-call bus writes were
 * the largest item in the gateway's profile (a third of its CPU at 64 clients).
 */
const AUDIT_BATCH_MS = 20;
const AUDIT_BATCH_MAX = 256;

/** Consumers are registry objects (bounded); a token without one is counted as such, not by subject. */
const consumerLabel = (principal: Principal) => principal.consumer ?? (principal.anonymous ? "anonymous" : "token");

/**
 * Records every tools/call once, from whichever lane served it: Prometheus metrics, and an
 * audit record published to the audit stream without waiting for it (a core publish the
 * stream captures, batched for at most `AUDIT_BATCH_MS`), so auditing never slows or fails a call.
 */
export class CallObserver {
  readonly #nc: NatsConnection;
  readonly #calls: HotCounter<"virtual_server" | "tool" | "upstream" | "consumer" | "outcome">;
  readonly #duration: HotHistogram<"virtual_server" | "upstream" | "outcome">;
  readonly #busFailures: Counter;
  readonly #errorReasons: Counter;
  readonly #refused: Counter;
  readonly #auditDropped: Counter;
  readonly #taskStatusesDropped: Counter;
  readonly #answersDropped: Counter;

  readonly #projection: CatalogProjection;
  /** The most a record's values (arguments and result, as recorded) may add to it. */
  readonly #maxValueBytes: number;
  #pending: { subject: string; payload: Uint8Array }[] = [];
  /** Calls answered in this turn of the event loop, recorded together once their answers are written. */
  #answered: CallFacts[] = [];
  #flushTimer: NodeJS.Timeout | undefined;

  constructor(nc: NatsConnection, registry: Registry, projection: CatalogProjection, maxValueBytes: number) {
    this.#nc = nc;
    this.#projection = projection;
    this.#maxValueBytes = maxValueBytes;
    this.#calls = new HotCounter({
      name: "manifold_gateway_tool_calls_total",
      help: "tools/call requests by virtual server, exposed tool, upstream, consumer and outcome (ok or the error code).",
      labelNames: ["virtual_server", "tool", "upstream", "consumer", "outcome"],
      registers: [registry],
    });
    this.#duration = new HotHistogram({
      name: "manifold_gateway_tool_call_duration_seconds",
      help: "tools/call duration at the gateway, from admission to answer.",
      labelNames: ["virtual_server", "upstream", "outcome"],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.#refused = new Counter({
      name: "manifold_gateway_requests_refused_total",
      help: "Requests refused at the HTTP edge before reaching a tool (credentials, grants, limits, sessions), by error code and consumer.",
      labelNames: ["code", "consumer"],
      registers: [registry],
    });
    this.#auditDropped = new Counter({
      name: "manifold_gateway_audit_records_dropped_total",
      help: "Audit records this gateway could not publish (the connection was closed or refused the message).",
      registers: [registry],
    });
    this.#taskStatusesDropped = new Counter({
      name: "manifold_gateway_task_statuses_dropped_total",
      help: "An upstream's notifications/tasks/status not passed on to the agent: no Task once bounded, by upstream.",
      labelNames: ["upstream"],
      registers: [registry],
    });
    this.#answersDropped = new Counter({
      name: "manifold_gateway_answers_dropped_total",
      help: "A 2025 agent's answers to server-to-client requests that reached no request: none of its session waited for the id (unasked), or the bus did not take it to the replica that asked (unsent).",
      labelNames: ["reason"],
      registers: [registry],
    });
    for (const reason of ["unasked", "unsent"] satisfies AnswerDropped[]) this.#answersDropped.inc({ reason }, 0);
    this.#errorReasons = new Counter({
      name: "manifold_gateway_tool_call_errors_total",
      help: "Failed tools/call requests whose error names a sub-reason (data.reason: invalid_result, result_too_deep, stream_ended, ...), by upstream and reason.",
      labelNames: ["upstream", "reason"],
      registers: [registry],
    });
    this.#busFailures = new Counter({
      name: "manifold_bus_request_failures_total",
      help: "Bus requests that failed for want of a responder, a timeout, or the bus itself.",
      labelNames: ["reason"],
      registers: [registry],
    });
  }

  /** A request refused at the HTTP edge; `principal` is absent when the caller was not authenticated. */
  refused(code: string, principal: Principal | undefined): void {
    this.#refused.inc({ code, consumer: principal ? consumerLabel(principal) : "unauthenticated" });
  }

  /** A 2025 upstream's task status that was no Task once bounded (`taskStatus.ts`): dropped, counted here, its content nowhere. */
  taskStatusDropped(upstream: string): void {
    this.#taskStatusesDropped.inc({ upstream });
  }

  /** An agent's answer that reached no request (`answerRelay.ts`): counted, its content nowhere. */
  answerDropped(reason: AnswerDropped): void {
    this.#answersDropped.inc({ reason });
  }

  /**
   * Records the call after its answer is written (`setImmediate`), so metrics and the audit record
   * never delay a call; one immediate serves all the calls answered in the same turn.
   */
  recordSoon(facts: CallFacts): void {
    if (this.#answered.push(facts) === 1) setImmediate(this.#recordAnswered);
  }

  readonly #recordAnswered = () => {
    const answered = this.#answered;
    this.#answered = [];
    for (const facts of answered) this.record(facts);
  };

  record(facts: CallFacts): void {
    const durationMs = performance.now() - facts.startedAt;
    const outcome = facts.errorCode ? "error" : facts.paused ? "input_required" : "ok";
    const consumer = consumerLabel(facts.principal);
    // A name that routed nowhere is no series of its own: each distinct one would be kept for the process's life.
    const tool = facts.upstream === "(none)" ? "(unknown)" : facts.exposedTool;
    this.#calls.inc({ virtual_server: facts.virtualServer, tool, upstream: facts.upstream, consumer, outcome: facts.errorCode ?? outcome });
    this.#duration.observe({ virtual_server: facts.virtualServer, upstream: facts.upstream, outcome }, durationMs / 1000);
    if (facts.errorReason === "no_connector") this.#busFailures.inc({ reason: "no_responders" });
    else if (facts.errorCode === "upstream_timeout") this.#busFailures.inc({ reason: "timeout" });
    else if (facts.errorCode === "bus_unavailable") this.#busFailures.inc({ reason: "bus_unavailable" });

    const record: AuditRecord = {
      at: isoNow(),
      consumer: principalName(facts.principal),
      virtualServer: facts.virtualServer,
      environment: facts.environment,
      exposedTool: facts.exposedTool,
      tool: facts.tool,
      upstream: facts.upstream,
      durationMs: Math.round(durationMs * 1000) / 1000,
      outcome,
      argumentBytes: facts.argumentBytes,
      resultBytes: facts.resultBytes,
    };
    if (facts.errorCode) record.errorCode = facts.errorCode;
    const reason = reasonOf(facts.errorReason);
    if (reason) {
      record.errorReason = reason;
      this.#errorReasons.inc({ upstream: facts.upstream, reason });
    }
    if (facts.traceId) record.traceId = facts.traceId;
    let payload: Uint8Array;
    try {
      payload = this.#payload(record, facts);
    } catch {
      // Runs after the answer, outside any request: a throw here would end the process. Values
      // that cannot be encoded drop the record, counted.
      this.#auditDropped.inc();
      return;
    }
    this.#pending.push({ subject: auditSubject(facts.virtualServer), payload });
    if (this.#pending.length >= AUDIT_BATCH_MAX) this.flush();
    else this.#flushTimer ??= setTimeout(() => this.flush(), AUDIT_BATCH_MS);
  }

  /** Publishes the pending audit records now (also on shutdown, before the bus connection closes). */
  flush(): void {
    if (this.#answered.length > 0) this.#recordAnswered();
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    const batch = this.#pending;
    this.#pending = [];
    for (const { subject, payload } of batch) {
      try {
        this.#nc.publish(subject, payload);
      } catch {
        // A closed connection or a refused message: the record is dropped and counted.
        this.#auditDropped.inc();
      }
    }
  }

  #payload(record: AuditRecord, facts: CallFacts): Uint8Array {
    const settings = this.#projection.virtualServer(facts.virtualServer)?.audit;
    if (!settings?.recordValues) return encode(encodeAuditRecord(record, facts));
    // The result text came over the bus: measured before it is parsed and walked.
    if (facts.resultText && jsonTextTooDeep(facts.resultText, JsonLimits.resultDepth)) {
      return encode(JSON.stringify({ ...record, valuesOmitted: "too_deep" }));
    }
    const withValues = { ...record, arguments: redactFields(facts.argumentsValue ?? {}, settings.redactFields) };
    if (facts.resultText) withValues.result = redactFields(JSON.parse(facts.resultText), settings.redactFields);
    const payload = encode(JSON.stringify(withValues));
    // The stream is every tenant's and keeps the newest bytes: one caller's large values would push
    // out the others' records (a 900 KB record a call). Past the bound, or past what the bus carries
    // (the record would be lost whole), the record is kept without them.
    const bare = encode(JSON.stringify(record));
    if (payload.length - bare.length > this.#maxValueBytes || payload.length > (this.#nc.info?.max_payload ?? Infinity)) return encode(JSON.stringify({ ...record, valuesOmitted: "too_large" }));
    return payload;
  }
}
