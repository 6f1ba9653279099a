/**
 * Every error Manifold reports, defined once. `jsonRpc` is the code a 2025 MCP client (and the
 * admin API) sees, `http` the status of the response that carries it; a 2026-07-28 client's code
 * follows from it (`jsonRpcCodeOf`), or is `modern` where the revision names the condition itself.
 * docs/errors.md documents each entry, and a test keeps the two in step.
 */
export const ErrorCode = {
  parse_error: { http: 400, jsonRpc: -32700, retryable: false },
  invalid_request: { http: 400, jsonRpc: -32600, retryable: false },
  session_required: { http: 400, jsonRpc: -32000, retryable: false },
  unauthorized: { http: 401, jsonRpc: -32041, retryable: false },
  forbidden: { http: 403, jsonRpc: -32043, retryable: false },
  rate_limited: { http: 429, jsonRpc: -32029, retryable: true },
  too_many_sessions: { http: 429, jsonRpc: -32030, retryable: true },
  /** A caller's 2026-07-28 `subscriptions/listen` streams past `GATEWAY_MAX_LISTENS_PER_PRINCIPAL` on one replica. */
  too_many_streams: { http: 429, jsonRpc: -32031, retryable: true },
  /** A caller's tool calls in flight (answers not yet read) past `GATEWAY_MAX_CALLS_PER_PRINCIPAL` on one replica, or its other answers being written past 16. */
  too_many_calls: { http: 429, jsonRpc: -32032, retryable: true },
  /** A caller's answers left unread on one gateway replica past 16 MiB (`MAX_UNREAD_ANSWER_BYTES`): its next call is refused, and so is the answer of one that ends meanwhile. */
  answers_unread: { http: 429, jsonRpc: -32035, retryable: true },
  /** An admin's audit, history or event page reads running at once past `REGISTRY_MAX_PAGE_READS_PER_ADMIN`, or its tool searches past 1. */
  too_many_reads: { http: 429, jsonRpc: -32033, retryable: true },
  /** Requests presenting credentials that fail, past the budget every such request on one gateway replica shares (`GATEWAY_MAX_FAILED_CREDENTIALS_PER_S`). */
  too_many_failed_credentials: { http: 429, jsonRpc: -32034, retryable: true },
  not_found: { http: 404, jsonRpc: -32044, retryable: false },
  unknown_virtual_server: { http: 404, jsonRpc: -32044, retryable: false },
  session_not_found: { http: 404, jsonRpc: -32001, retryable: false },
  already_exists: { http: 409, jsonRpc: -32600, retryable: false },
  version_conflict: { http: 409, jsonRpc: -32600, retryable: true },
  name_collision: { http: 409, jsonRpc: -32600, retryable: false },
  in_use: { http: 409, jsonRpc: -32600, retryable: false },
  definitions_differ: { http: 409, jsonRpc: -32600, retryable: false },
  /** The registry holds as many of a thing as `RegistryLimits` allows: one must go before another is added. */
  limit_reached: { http: 409, jsonRpc: -32600, retryable: false },
  tool_not_discovered: { http: 422, jsonRpc: -32602, retryable: false },
  idempotency_key_reused: { http: 422, jsonRpc: -32600, retryable: false },
  unknown_tool: { http: 200, jsonRpc: -32602, retryable: false },
  invalid_arguments: { http: 200, jsonRpc: -32602, retryable: false },
  unknown_prompt: { http: 200, jsonRpc: -32602, retryable: false },
  resource_not_found: { http: 200, jsonRpc: -32602, retryable: false },
  invalid_upstream_headers: { http: 400, jsonRpc: -32602, retryable: false },
  body_too_large: { http: 413, jsonRpc: -32600, retryable: false },
  upstream_unavailable: { http: 200, jsonRpc: -32010, retryable: true },
  upstream_timeout: { http: 200, jsonRpc: -32011, retryable: true },
  upstream_error: { http: 200, jsonRpc: -32012, retryable: false },
  /** An upstream (or a proxy before it) answered the call with HTTP 429: its own rate limit; `data.retryAfterMs` when it said when. */
  upstream_rate_limited: { http: 200, jsonRpc: -32017, retryable: true },
  /** 2025-11-25's URL elicitation required (-32042, which 2026-07-28 MUST NOT emit); a 2026-07-28 client lacks `elicitation.url` (-32021). */
  upstream_authorization_required: { http: 200, jsonRpc: -32042, modern: -32021, retryable: true },
  payload_too_large: { http: 200, jsonRpc: -32016, retryable: false },
  bus_unavailable: { http: 503, jsonRpc: -32013, retryable: true },
  shutting_down: { http: 503, jsonRpc: -32014, retryable: true },
  at_capacity: { http: 503, jsonRpc: -32015, retryable: true },
  json_too_deep: { http: 400, jsonRpc: -32600, retryable: false },
  /** A body holding more object keys than `JsonLimits.requestKeys` (an agent's) or `adminKeys` (an admin's). */
  json_too_wide: { http: 400, jsonRpc: -32600, retryable: false },
  /** A body holding a number `JSON.parse` reads as ±Infinity (1e400): forwarded, it became `null`. */
  json_number_out_of_range: { http: 400, jsonRpc: -32600, retryable: false },
  duplicate_request_id: { http: 409, jsonRpc: -32600, retryable: false },
  method_not_allowed: { http: 405, jsonRpc: -32600, retryable: false },
  uri_too_long: { http: 414, jsonRpc: -32600, retryable: false },
  headers_too_large: { http: 431, jsonRpc: -32600, retryable: false },
  request_timeout: { http: 408, jsonRpc: -32600, retryable: true },
  host_not_allowed: { http: 403, jsonRpc: -32043, retryable: false },
  origin_not_allowed: { http: 403, jsonRpc: -32043, retryable: false },
  header_mismatch: { http: 400, jsonRpc: -32020, retryable: false },
  unsupported_protocol_version: { http: 400, jsonRpc: -32022, retryable: false },
  /** A 2026-07-28 retry whose `requestState` fails verification (forged, tampered, expired, or another caller's). */
  invalid_request_state: { http: 200, jsonRpc: -32602, retryable: false },
  /** MCP 2026-07-28: the tool can only answer with a task and the request did not declare the tasks extension. */
  missing_client_capability: { http: 400, jsonRpc: -32021, retryable: false },
  /** 2025-11-25 tasks: a task asked of a tool whose pin forbids them, or none of one whose pin requires one. */
  task_mode_unsupported: { http: 200, jsonRpc: -32601, retryable: false },
  /** A task id this caller does not hold: unknown, expired, made up, or another caller's (one answer for all). */
  task_not_found: { http: 200, jsonRpc: -32602, retryable: false },
  /** The upstream refused a task request as invalid (its own -32602: a task id it no longer knows, a `tasks/cancel` of a task that ended): the tasks spec's protocol error. */
  invalid_task_request: { http: 200, jsonRpc: -32602, retryable: false },
  /** A subscription to a resource whose upstream declared no `resources.subscribe`: refused without asking it. */
  subscribe_unsupported: { http: 200, jsonRpc: -32602, retryable: false },
  /** A 2025 session's `resources/subscribe` beyond `MAX_SESSION_SUBSCRIPTIONS`, or `MAX_SESSION_SUBSCRIPTION_CHARS` of URIs in all. */
  too_many_subscriptions: { http: 200, jsonRpc: -32602, retryable: false },
  internal_error: { http: 500, jsonRpc: -32603, retryable: false },
} as const satisfies Record<string, { http: number; jsonRpc: number; modern?: number; retryable: boolean }>;
export type ErrorCode = keyof typeof ErrorCode;

/** The protocol family an MCP request speaks: 2025 revisions (sessions, 1.x SDK) or 2026-07-28 (stateless, 2.x SDK). */
export type Era = "legacy" | "modern";

/** The codes MCP 2026-07-28 defines ("Error Codes", basic/index.mdx): JSON-RPC's own, and -32020..-32022 of its reserved sub-range. */
const SPEC_CODES: ReadonlySet<number> = new Set([-32700, -32600, -32601, -32602, -32603, -32020, -32021, -32022]);
/** JSON-RPC's range for implementation-defined server errors, which MCP 2026-07-28 partitions into legacy and reserved. */
const SERVER_ERRORS = { from: -32099, to: -32000 };
/**
 * How far a 2026-07-28 client's code of Manifold's own is from its 2025 code: -32010 upstream_unavailable
 * is -31010. MCP 2026-07-28 ("Error Codes") says "-32000 to -32019: new implementations SHOULD NOT use
 * codes from this sub-range", "-32020 to -32099: implementations MUST NOT emit any code from this
 * sub-range that is not defined by this specification" and "New error codes for purposes not defined
 * by this specification SHOULD be allocated outside the JSON-RPC reserved range (-32768 to -32000)".
 * +1000 puts every code of -32099..-32000 in -31099..-31000: outside that range, none taken twice, and
 * each read at a glance as its 2025 twin (2025 clients expect their numbers, so they keep them).
 */
const MODERN_SHIFT = 1_000;

/** The JSON-RPC code an error is sent with to a client of `era` (the admin API's are the 2025 ones). Only failures pay for it. */
export function jsonRpcCodeOf(code: ErrorCode, era: Era): number {
  const entry: { jsonRpc: number; modern?: number } = ErrorCode[code];
  if (era === "legacy") return entry.jsonRpc;
  if (entry.modern !== undefined) return entry.modern;
  const own = !SPEC_CODES.has(entry.jsonRpc) && entry.jsonRpc >= SERVER_ERRORS.from && entry.jsonRpc <= SERVER_ERRORS.to;
  return own ? entry.jsonRpc + MODERN_SHIFT : entry.jsonRpc;
}

/**
 * `upstream_authorization_required` for a 2026-07-28 client that declares `elicitation.url`, on a
 * request MRTR gives no `input_required` (completion/complete, the task requests): the error itself,
 * its data carrying the consent elicitation. Its -32021 (MissingRequiredClientCapability) would be
 * untrue for that client; this is the 2025 code (-32042) moved by `MODERN_SHIFT`, as Manifold's own are.
 */
export const CONSENT_ERROR_MODERN = ErrorCode.upstream_authorization_required.jsonRpc + MODERN_SHIFT;

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === "string" && Object.hasOwn(ErrorCode, value);

/** A failure with a stable code. Messages name what was wrong; they never carry secrets. */
export class ManifoldError extends Error {
  override readonly name = "ManifoldError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly data?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
  get retryable(): boolean {
    return ErrorCode[this.code].retryable;
  }
  get httpStatus(): number {
    return ErrorCode[this.code].http;
  }
  toJSON() {
    return { code: this.code, message: this.message, ...(this.data ? { data: this.data } : {}) };
  }
}

/**
 * The `Retry-After` (delta-seconds) an error's data asks for: a limit's own `retryAfterSeconds`
 * (the gateway's and the registry's bounds), or an upstream's `retryAfterMs` (what its own 429 or
 * 503 said, or how long the circuit it opened stays open), rounded up. Undefined when it names
 * none. Both services' HTTP edges write their answers' header from it.
 */
export function retryAfterOf(data: Record<string, unknown> | undefined): string | undefined {
  const seconds = data?.retryAfterSeconds;
  if (typeof seconds === "number") return String(seconds);
  const ms = data?.retryAfterMs;
  return typeof ms === "number" ? String(Math.ceil(ms / 1_000)) : undefined;
}

/**
 * How long to wait before resending what the bus could not carry (NATS down or recovering): a
 * restarted nats-server answered the first retried command after 1-2 s (`busKilledMidCommands.e2e`).
 */
export const BUS_RETRY_AFTER_MS = 1_000;

/**
 * An error's data as it is answered: a `bus_unavailable` that names no wait of its own gets
 * `retryAfterMs: BUS_RETRY_AFTER_MS`, so every lane says when to come back in the form it allows
 * (the HTTP `Retry-After` from `retryAfterOf`, the JSON-RPC error's `data` on an SSE stream).
 */
export function withRetryHint(code: ErrorCode, data: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (code !== "bus_unavailable" || retryAfterOf(data) !== undefined) return data;
  return { ...data, retryAfterMs: BUS_RETRY_AFTER_MS };
}

/**
 * A spent, foreign or mismatched `requestState`: `data.reason` names it as the 2.x SDK's own
 * refusal does, beside Manifold's `data.code`, so an agent reads every such refusal one way.
 */
/**
 * A caller's upstream token was obtained for another address than the connector's upstream has now
 * (`BusHeader.upstreamResource`): not sent. Retryable: the gateway then picks a token for the new address.
 */
export const upstreamMoved = (target: string) =>
  new ManifoldError("upstream_unavailable", `${target} was re-pointed after your token for it was obtained; the token was not sent: retry`, { reason: "upstream_moved" });

export const invalidRequestState = (message: string) => new ManifoldError("invalid_request_state", message, { reason: "invalid_request_state" });
