import { CONNECTION_CLOSED, INVALID_RESULT, JsonLimits, ManifoldError, RESULT_TOO_DEEP, TASK_EXTENSION, cutText, jsonValueTooDeep, nonFiniteNumberPath } from "@manifold/contracts";
import { INTERNAL_ERROR, ProtocolError, SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import { redact, redactJson } from "./withheldValues.js";

/** Node and undici errors that quote the offending value (a header value, an environment value). */
const VALUE_QUOTING_CODES = new Set(["ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_TYPE", "ERR_INVALID_CHAR", "ERR_HTTP_INVALID_HEADER_VALUE"]);
const VALUE_QUOTING_TEXT = /header value|ByteString|null bytes|includes credentials/i;
/** `scheme://user:password@`: user info is a credential wherever a URL shows up. */
const USER_INFO = /(\/\/)[^/\s@]*@/g;
// eslint-disable-next-line no-control-regex -- control characters are what this removes
const CONTROL = /[\u0000-\u001f\u007f]+/g;
const MAX_REASON = 500;
/** The most of an upstream's own JSON-RPC error message passed on: it reaches agents, logs and spans. */
const MAX_UPSTREAM_MESSAGE = 1_024;

/** An upstream's error message as others read it: the credentials sent to it withheld, no control characters, bounded. */
const upstreamMessage = (message: string) => cutText(redact(message).replace(CONTROL, " "), MAX_UPSTREAM_MESSAGE);
/** `text`, or its first `max` characters and an ellipsis. */
/**
 * The SDK quotes an upstream's error page after its status or its request (`Error POSTing to
 * endpoint (HTTP 413): <page>`, `Error POSTing to endpoint: <page>`, `Failed to open SSE stream:
 * <page>`): cut, see `UpstreamHttpStatus`.
 */
const QUOTED_PAGE = /((?:\(HTTP \d{3}\))|(?:Error POSTing to endpoint|Failed to open SSE stream)(?! \(HTTP)):[\s\S]*$/;
/**
 * V8's JSON parser quotes the text it refused (`Unexpected token 'x', "x-api-key="... is not valid
 * JSON`: the whole text when short, else ten characters around the error): an upstream's answer
 * that is not JSON, in a health reason every admin reads. The excerpt goes; the whole text, when
 * quoted, was caught by `redact`, ten characters of it were not (a body starting with the key put
 * its first ten characters in the registration's answer and the health reason).
 */
const QUOTED_JSON = /(?:Unexpected token '[\s\S]{1,2}', )?(?:\.\.\.)?"[\s\S]*"(?:\.\.\.)? is not valid JSON/;
/** The HTTP status an SDK error names (`data.status`, or `(HTTP nnn)` in its text). */
function httpStatusOf(error: unknown): number | undefined {
  if (!(error instanceof Error)) return undefined;
  const status = (error as { data?: { status?: unknown } }).data?.status;
  if (typeof status === "number") return status;
  const named = /\(HTTP (\d{3})\)/.exec(error.message);
  return named ? Number(named[1]) : undefined;
}

/**
 * The one place where a library's or the OS's error text becomes something Manifold repeats
 * (to agents, in logs, health reports, spans): an error of a kind that quotes the value it
 * refused is replaced by a sentence that does not, user info is cut out of URLs, control
 * characters go, and the text is bounded. Our own ManifoldErrors never carry values.
 */
export function safeReason(error: unknown): string {
  if (error instanceof ManifoldError) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | undefined)?.code;
  if ((typeof code === "string" && VALUE_QUOTING_CODES.has(code)) || VALUE_QUOTING_TEXT.test(message)) {
    return "a header, URL or environment value was refused as invalid (value withheld)";
  }
  const cleaned = redact(message).replace(QUOTED_PAGE, "$1").replace(QUOTED_JSON, "an answer that is not valid JSON (text withheld)").replace(USER_INFO, "$1").replace(CONTROL, " ");
  const system = systemCodeOf(error);
  return cutText(system && !cleaned.includes(system) ? `${cleaned} (${system})` : cleaned, MAX_REASON);
}

/** A system error code: `ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`, `UND_ERR_SOCKET`, … */
const SYSTEM_CODE = /^(?:E[A-Z]+|UND_ERR_[A-Z_]+)$/;

/**
 * The system error code somewhere in `error`'s causes (at most a few levels). undici's message is
 * only "fetch failed" and the SDK wraps it again, so an upstream refusing connections, resetting
 * them or not resolving all read "fetch failed" in health and errors. Only the code is kept: the
 * cause's own message names addresses and may quote more.
 */
function systemCodeOf(error: unknown): string | undefined {
  let cause: unknown = error;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && SYSTEM_CODE.test(code)) return code;
    cause = cause.cause;
  }
  return undefined;
}

/**
 * An upstream (or a proxy before it) answered a call with an HTTP status, not a JSON-RPC answer.
 * Its page is never quoted: error pages echo the request, its arguments and its headers (the
 * upstream's own credentials among them), and the text would reach the caller, other callers
 * (health, a breaker's reason) and logs.
 */
export class UpstreamHttpStatus extends Error {
  constructor(
    readonly status: number,
    /** What its `Retry-After` asked for (`retryAfter.ts`), read on a 429 or 503 only. */
    readonly retryAfterMs?: number,
  ) {
    super(`upstream answered HTTP ${status}`);
  }
}

/**
 * Statuses that say "not now" rather than "not this": the upstream's rate limit (429) or its
 * overload (503). Their `Retry-After` is read (and only theirs: a 200 costs nothing more), and
 * they win over a JSON-RPC error in the body, whose text (`slow down, key …`) is not passed on.
 */
export const PUSHBACK_STATUSES: ReadonlySet<number> = new Set([429, 503]);
const RATE_LIMITED = 429;
const OVERLOADED = 503;

/**
 * Statuses that speak of the upstream, not of one request: its credentials refused (the shared
 * session's are the operator's), a proxy that cannot reach it, or the upstream overloaded (503).
 * Any other (413 for one large request, 500 for one request a handler failed on, 403 for one
 * request a firewall refused) is that call's failure alone: counted against no breaker and no
 * session, or one caller's refused requests cut every other caller off. A 504 is a proxy that gave
 * up waiting for one request: a timeout, counted against that tool as the call's own timeout is;
 * a 429 is a rate limit (`upstream_rate_limited`), counted against that tool too (the limit may be
 * the tool's alone).
 */
const UNAVAILABLE_STATUSES = new Set([401, 502, 503]);
const BAD_GATEWAY = 502;
const GATEWAY_TIMEOUT = 504;

/**
 * An answer whose body (or event) is not JSON: that request's failure. Its text is not passed on:
 * the parser's message quotes the body, which may be another caller's answer, and a breaker's
 * reason reaches every caller.
 */
export class UnreadableAnswer extends Error {
  constructor() {
    super("the upstream's answer is not JSON");
  }
}

/**
 * The system codes of a request's own connection closed (ended: undici's "other side closed", or
 * reset) under it, before its answer: what a firewall refusing one request's content, or a handler
 * dying on it, looks like. That request's failure: whether the upstream is down, its next
 * connection tells (refused, which still counts against it), and a ping.
 */
const CLOSED_UNDER_REQUEST: ReadonlySet<string> = new Set(["UND_ERR_SOCKET", "ECONNRESET"]);

/** JSON-RPC "Missing required client capability" (2026-07-28). */
const MISSING_CLIENT_CAPABILITY = -32021;
const namesTasks = (data: unknown): boolean => {
  const extensions = (data as { requiredCapabilities?: { extensions?: unknown } } | undefined)?.requiredCapabilities?.extensions;
  return typeof extensions === "object" && extensions !== null && TASK_EXTENSION in extensions;
};

/** Tells apart: the upstream answered with an error, it took too long, or it cannot be reached. */
/** What one answer can get wrong: the SDK's checks of a result it received. */
const SINGLE_ANSWER_FAILURES: ReadonlySet<string> = new Set([SdkErrorCode.InvalidResult, SdkErrorCode.UnsupportedResultType, SdkErrorCode.InputRequiredRoundsExceeded]);

export function mapUpstreamError(error: unknown, target: string, timeoutMs: number): ManifoldError {
  if (error instanceof ManifoldError) return error;
  if (error instanceof UnreadableAnswer) return new ManifoldError("upstream_error", `${target} answered with a body that is not JSON`, { reason: INVALID_RESULT }, { cause: error });
  if (error instanceof UpstreamHttpStatus) {
    if (error.status === GATEWAY_TIMEOUT) return new ManifoldError("upstream_timeout", `${target} answered HTTP 504: a proxy gave up waiting for it`, { httpStatus: 504 }, { cause: error });
    // The wait stays out of the message: a breaker's reason (and a health report) would change with every answer.
    const data = { httpStatus: error.status, ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }) };
    if (error.status === RATE_LIMITED) return new ManifoldError("upstream_rate_limited", `${target} answered HTTP 429: it limits how often it is called`, data, { cause: error });
    const unavailable = UNAVAILABLE_STATUSES.has(error.status);
    return new ManifoldError(unavailable ? "upstream_unavailable" : "upstream_error", `${target} answered HTTP ${error.status}`, data, { cause: error });
  }
  if (error instanceof SdkError) {
    if (error.code === SdkErrorCode.RequestTimeout) {
      return new ManifoldError("upstream_timeout", `${target} did not answer within ${timeoutMs} ms`, { timeoutMs }, { cause: error });
    }
    if (error.code === SdkErrorCode.ConnectionClosed) {
      return new ManifoldError("upstream_unavailable", `${target} closed the connection`, undefined, { cause: error });
    }
    // The session carried an answer; the answer itself broke the protocol (a blob that is not
    // Base64, a message role no revision has): that request's failure, never the session's, or one
    // caller reading one bad item would cut every other caller off the upstream. Its text (the
    // schema's findings, which may quote the upstream) is not passed on.
    if (SINGLE_ANSWER_FAILURES.has(error.code)) {
      return new ManifoldError("upstream_error", `${target} answered with a result that does not follow the MCP schema`, { reason: INVALID_RESULT }, { cause: error });
    }
  }
  // The SDK's transports answer an HTTP status with an error of their own: as the direct caller's.
  const status = error instanceof ProtocolError ? undefined : httpStatusOf(error);
  if (status !== undefined) return mapUpstreamError(new UpstreamHttpStatus(status), target, timeoutMs);
  if (error instanceof ProtocolError && error.code === MISSING_CLIENT_CAPABILITY && namesTasks(error.data)) {
    // SEP-2663: the call can only be answered with a task and its agent did not declare the
    // extension; the agent can mend that, so it hears it as Manifold's own -32021.
    return new ManifoldError("missing_client_capability", `${target} answers this call with a task: declare the ${TASK_EXTENSION} extension`, {
      requiredCapabilities: { extensions: { [TASK_EXTENSION]: {} } },
    }, { cause: error });
  }
  if (error instanceof ProtocolError) {
    const refused = refusedAnswerPath(error.data);
    if (refused !== undefined) return numberOutOfRange(target, OUT_OF_RANGE_ANSWER, refused);
    // Its data as the SDK client parsed it: a number read as Infinity would reach the agent as `null`.
    const path = nonFiniteNumberPath(error.data);
    if (path !== undefined) return numberOutOfRange(target, "JSON-RPC error", `/error/data${path}`);
    // The upstream's own JSON-RPC error: its message, code and data are the caller's to see, but for
    // the credentials the connector sent it (a debug message may echo its request's headers).
    const data = error.data === undefined ? undefined : redactJson(error.data);
    return new ManifoldError("upstream_error", `${target} returned an error: ${upstreamMessage(error.message)}`, {
      upstreamCode: error.code,
      ...(data === undefined ? {} : { upstreamData: data }),
    }, { cause: error });
  }
  // `cause` keeps the original for code that needs it (never for text anyone else reads).
  const system = systemCodeOf(error);
  if (system !== undefined && CLOSED_UNDER_REQUEST.has(system)) {
    return new ManifoldError("upstream_unavailable", `${target} closed the connection of this request before answering it (${system})`, { reason: CONNECTION_CLOSED }, { cause: error });
  }
  return new ManifoldError("upstream_unavailable", `${target} could not be reached: ${safeReason(error)}`, undefined, { cause: error });
}

/**
 * An upstream's JSON-RPC error with the credentials the connector sent it redacted from its message
 * and data, in place (its class and code kept): for errors that leave a span as they are.
 */
export function withheldIn(error: unknown): unknown {
  if (error instanceof ProtocolError) {
    error.message = upstreamMessage(error.message);
    if (error.data !== undefined) (error as { data: unknown }).data = redactJson(error.data);
  }
  return error;
}

/** Failures that say the upstream is unhealthy, or pushing back (and count for a circuit breaker). */
export const isHealthFailure = (error: ManifoldError) => error.code === "upstream_unavailable" || error.code === "upstream_timeout" || error.code === "upstream_rate_limited";

/**
 * Failures after which a 2025 session is dropped (the next call reconnects): the upstream could not
 * be reached, or its credentials were refused. Not an overloaded upstream's 503 (nor a 429, which is
 * not `upstream_unavailable`): the session is fine, and one caller's pushed-back call would make every
 * caller reconnect, initializing against an upstream that asked for less traffic. Nor one
 * request's connection closed under it, unanswered (`CLOSED_UNDER_REQUEST`): one caller's calls or
 * reads a firewall cut made every caller's session start over.
 */
export const dropsSession = (error: ManifoldError) => saysUnreachable(error) && !mayBeOneRequests(error);

/** The upstream could not be reached or refused its credentials: what a failed ping of the shared session says of it. */
export const saysUnreachable = (error: ManifoldError) => error.code === "upstream_unavailable" && error.data?.httpStatus !== OVERLOADED;

/** One request's own connection closed under it, unanswered (`CLOSED_UNDER_REQUEST`): its failure, not the session's nor the upstream's. */
export const closedOneCall = (error: ManifoldError) => error.data?.reason === CONNECTION_CLOSED;

/**
 * A failure that may be one request's alone: its own connection cut, or a proxy's 502 for it
 * (nginx's answer when the upstream cut that request's connection, as well as when it cannot reach
 * the upstream at all). Counted against the caller's circuit of the tool, the session kept; the
 * upstream is pinged (`UpstreamLiveness`), and a ping so answered drops a 2025 session and refuses
 * every call on the shared session at once until a ping is answered (`saysUnreachable`).
 */
export const mayBeOneRequests = (error: ManifoldError) => closedOneCall(error) || error.data?.httpStatus === BAD_GATEWAY;

/**
 * A number `JSON.parse` read as ±Infinity (1e400) in what an upstream sent, at `path` (a JSON
 * Pointer; the number is never quoted): written on, it would reach the agent as `null`.
 */
export const numberOutOfRange = (target: string, what: string, path: string) =>
  new ManifoldError("upstream_error", `${target} returned a ${what} holding a number no double can hold (read as Infinity) at '${path}'`, { reason: INVALID_RESULT, path });

const OUT_OF_RANGE_ANSWER = "JSON-RPC answer";
/** The `data` of the errors `answerOutOfRange` made: an upstream cannot make one (no object it sends is in here). */
const refusedAnswers = new WeakSet<object>();

/**
 * The JSON-RPC error the SDK client is handed in place of an answer holding a number no double can
 * hold at `path` (`holdFiniteNumbers`): the request it answers fails with it, and `mapUpstreamError`
 * reads it back as `numberOutOfRange`.
 */
export function answerOutOfRange(target: string, path: string): { code: number; message: string; data: { path: string } } {
  const data = { path };
  refusedAnswers.add(data);
  return { code: INTERNAL_ERROR, message: numberOutOfRange(target, OUT_OF_RANGE_ANSWER, path).message, data };
}

const refusedAnswerPath = (data: unknown): string | undefined =>
  typeof data === "object" && data !== null && refusedAnswers.has(data) ? (data as { path: string }).path : undefined;

/**
 * An upstream's result or tool list nested past `JsonLimits.resultDepth` is refused here, before
 * it is encoded (`JSON.stringify` overflows the stack past a few thousand levels) or handed on
 * to services that walk it.
 */
export function mustNotNestTooDeep(value: unknown, target: string, what: string): void {
  const maxDepth = JsonLimits.resultDepth;
  if (!jsonValueTooDeep(value, maxDepth)) return;
  throw new ManifoldError("upstream_error", `${target} returned a ${what} nested deeper than ${maxDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth });
}

/**
 * The upstream's answer outgrew what one bus message carries: reading stopped there, so a
 * hostile or broken upstream cannot make the connector buffer an endless body.
 */
export class ResultTooLarge extends ManifoldError {
  constructor(
    readonly maxBytes: number,
    /** Bytes read when reading stopped. */
    readonly received: number,
  ) {
    // Not the session's fault: the upstream session stays (the caller names the upstream and tool).
    super("payload_too_large", `the answer is more than ${maxBytes} bytes`, { bytes: received, maxBytes });
  }
}

/** The JSON-RPC envelope around an answer that fits a bus message may take this much more. */
export const ANSWER_SLACK = 64 * 1024;
