import { InputRequest, InputRequiredReply, INVALID_RESULT, isRecord, JSON_TOO_DEEP, JsonLimits, MAX_INPUT_ROUNDS, ManifoldError, INPUT_REQUIRED, NOTIFICATION_BYTES_PER_CALL, STREAM_ENDED, TASK_EXTENSION, unreadableNumbersOrDepth } from "@manifold/contracts";
import { LOG_LEVEL_META_KEY, ProtocolError, SdkError, SdkErrorCode, type Progress } from "@modelcontextprotocol/client";
import { createParser, type EventSourceMessage, type EventSourceParser, type ParseError } from "eventsource-parser";
import { StringDecoder } from "node:string_decoder";
import type { Dispatcher, Pool } from "undici";
import { traceHeaders } from "@manifold/telemetry";
import type { Cancellation } from "./cancellation.js";
import { cancellationNoticesOf, type CancellationNotices } from "./cancellationNotices.js";
import type { ParamHeader, TaskMode } from "@manifold/contracts";
import { envelopeMembers, headerValue, judgedResult, paramHeaderValues, withMeta } from "./modernRequest.js";
import { SessionNotFound, sessionRefused } from "./sessionExpiry.js";
import { ANSWER_SLACK, PUSHBACK_STATUSES, ResultTooLarge, UnreadableAnswer, UpstreamHttpStatus, mustNotNestTooDeep, numberOutOfRange } from "./upstreamErrors.js";
import { retryAfterMs } from "./retryAfter.js";
import { resultTextOf } from "./resultText.js";
import { callResultOf, isTaskAnswer } from "./callResultShape.js";
import type { Interaction } from "./heldCall.js";
import type { CallLog } from "./callLog.js";
import { CALL_REQUESTS } from "./serverRequests.js";
import { requestOutOfRange } from "./finiteNumbers.js";
import { NamedHeaders } from "./namedHeaders.js";
import { GroupedTimer } from "./groupedTimer.js";
import { RESUMED_QUESTION, ResumedStream } from "./resumedStream.js";
import type { SessionQuestions } from "./sessionQuestions.js";

export interface DirectCallOptions {
  timeoutMs: number;
  cancellation?: Cancellation | undefined;
  /** When set, the upstream is asked for progress and each notification is handed here. */
  onprogress?: ((progress: Progress) => void) | undefined;
  /** When set, the upstream's requests to the agent (either era) are relayed to it. */
  interaction?: Interaction | undefined;
  /** When set, the upstream's log messages on the call's stream go here (2026-07-28: the request asks for them). */
  log?: CallLog | undefined;
  /** 2026-07-28: the request declares the tasks extension, so the upstream may answer with a task. */
  tasks?: boolean | undefined;
  /** 2025: how the call asks for a task (`CallOptions.task`); absent: it takes none. */
  task?: TaskMode | undefined;
  /** The most an answer may hold (a bus message's size): past it, reading stops (`ResultTooLarge`). */
  maxResultBytes?: number | undefined;
  /**
   * Runs a wait for the agent's answers to a 2026-07-28 round, when nothing of the call is
   * upstream: what the call holds there (its slots) is given back meanwhile and taken again for
   * the retry. Held through the wait, 32 rounds nobody answered kept another tenant's call of the
   * tool waiting 9.6 s, its whole budget.
   */
  idle?: (<T>(wait: () => Promise<T>) => Promise<T>) | undefined;
  /**
   * When the call's whole budget ends (epoch ms): no request of the call outlives it, and no round
   * starts after it. `timeoutMs` alone bounds the wait between chunks, so an upstream sending a
   * comment every 500 ms held its call, and its slots, for good; rounds answered just under it
   * made one call run 8 times its budget.
   */
  deadline?: number | undefined;
  /** Who makes the call, as the gateway vouches (`CallOptions.caller`): a question on its resumed stream may be relayed only for that caller. */
  caller?: string | undefined;
}


/** What a call's SSE stream may carry besides its answer: 64 times the notifications a call passes on (16 MiB). */
const CALL_STREAM_NOTIFICATION_BYTES = 64 * NOTIFICATION_BYTES_PER_CALL;
/**
 * The least each piece of an answer counts for against its bounds: a chunk of its body (undici hands
 * each chunk of a chunked body over alone, a view of the socket's buffer). Counted by their bytes
 * alone, one-byte chunks held ~120 MiB a call, and slowed another tenant's calls 6 -> 180 ms (p50).
 */
const PIECE_BYTES = 256;
/** Informational (1xx) responses a call's request may draw: a 103 Early Hints or two is all HTTP has use for here. */
const MAX_INFORMATIONAL = 8;
/**
 * A 2025-11-25 call's stream ended without its answer after an event id (SEP-1699 polling): it is
 * resumed with a GET carrying `Last-Event-ID` at most this many times a call, each after the
 * stream's `retry` (at least `MIN_RESUME_WAIT_MS`, `DEFAULT_RESUME_WAIT_MS` when it named none),
 * and only while the call's budget outlasts the wait. A stream ended over and over with `retry: 0`
 * costs 16 GETs spread over 1.6 s, not a loop for the call's whole budget.
 */
const MAX_RESUMES = 16;
const MIN_RESUME_WAIT_MS = 100;
/** What the SDK's own client waits before reconnecting when the server named no `retry`. */
const DEFAULT_RESUME_WAIT_MS = 1_000;
/** An event id the resumption may send back as `Last-Event-ID`: printable ASCII, bounded (another is not resumed). */
const RESUMABLE_ID = /^[\x20-\x7e]{1,1024}$/;
/** The tasks extension as a request declares it (SEP-2663). */
const TASKS_DECLARED = { extensions: { [TASK_EXTENSION]: {} } };


/** A 2026-07-28 upstream's `input_required` answer, for a call whose agent may be asked. */
class InputRequiredRound extends Error {
  constructor(readonly result: { inputRequests?: unknown; requestState?: unknown }) {
    super("input required");
  }
}

/** What the connection negotiated: a 2025-era session, or a 2026-07-28 upstream (no session). */
export type DirectEra =
  | { modern: false; sessionId: string | undefined; protocolVersion: string | undefined }
  | { modern: true; protocolVersion: string; paramHeaders?: ReadonlyMap<string, readonly ParamHeader[]> | undefined };

type JsonRpcAnswer = {
  id?: unknown;
  method?: string;
  params?: Progress & { progressToken?: unknown };
  result?: { resultType?: unknown };
  error?: { code: number; message: string; data?: unknown };
};

/** Asks for a 2025 call's stream again after `lastEventId`, read by `handler`. */
type Resumer = (lastEventId: string, handler: ToolCallHandler, timeoutMs: number) => void;

/** Why a request was aborted from our side: the call was cancelled, or its SSE answer has arrived. */
class Aborted extends Error {}

/**
 * tools/call over Streamable HTTP without the SDK's per-request machinery (web streams, fetch,
 * schema validation): the measured hot path. One keep-alive POST of the JSON-RPC request, whose
 * `params` the gateway already serialized, and the `result` back as JSON text; JSON and SSE
 * responses are both read. Everything else (negotiating the era, listing, notifications) stays
 * with the SDK client of the session this belongs to.
 *
 * The two eras differ only in what a request carries and how it is cancelled: a 2025-era request
 * names its session and is cancelled with `notifications/cancelled`; a 2026-07-28 request carries
 * the `_meta` envelope and the `Mcp-Method`/`Mcp-Name` headers, and closing its stream is the
 * cancellation (basic/patterns/cancellation).
 */
/**
 * A cancellation or an answer to the upstream's request is ended after this long (`CONNECT_TIMEOUT_MS`'s
 * default): sent to an upstream that answers nothing, it held its socket for the pool's 300 s.
 */
const DEFAULT_ACCEPT_MS = 10_000;

export class DirectCaller {
  #nextId = 0;
  readonly #path: string;
  readonly #headers: Record<string, string>;
  readonly #era: DirectEra;
  /** Modern only: the `_meta` envelope members every request carries. */
  readonly #envelope: string;
  /** Modern only: each tool's request headers (`Mcp-Name` differs), made once rather than per call. */
  readonly #toolHeaders = new Map<string, Record<string, string>>();
  /** 2025 only: a resuming GET's headers (`Last-Event-ID` added per request). */
  readonly #resumeHeaders: Record<string, string>;
  /** 2025 only: resumes a call's stream (`#resume`), made once rather than per call. */
  readonly #resumer: Resumer | undefined;
  /** 2025 only: the cancellations sent to this upstream, shared by its sessions. */
  readonly #notices: CancellationNotices;

  constructor(
    readonly pool: Pool,
    url: URL,
    headers: Readonly<Record<string, string>>,
    era: DirectEra,
    /** How long the upstream may take to accept a notification or an answer (it answers 202 at once). */
    readonly acceptMs: number = DEFAULT_ACCEPT_MS,
  ) {
    this.#path = `${url.pathname}${url.search}`;
    this.#era = era;
    this.#notices = cancellationNoticesOf(pool);
    this.#envelope = era.modern ? envelopeMembers(era.protocolVersion) : "";
    const sessionId = era.modern ? undefined : era.sessionId;
    this.#headers = {
      ...headers,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(sessionId ? { "mcp-session-id": sessionId } : {}),
      ...(era.protocolVersion ? { "mcp-protocol-version": era.protocolVersion } : {}),
      ...(era.modern ? { "mcp-method": "tools/call" } : {}),
    };
    const { "content-type": _type, ...rest } = this.#headers;
    this.#resumeHeaders = { ...rest, accept: "text/event-stream" };
    // 2026-07-28: "Resumable SSE streams via `Last-Event-ID` are not supported".
    this.#resumer = era.modern ? undefined : (lastEventId, handler, timeoutMs) => this.#resume(lastEventId, handler, timeoutMs);
  }

  /**
   * `paramsJson` is the serialized `params` of tools/call and `tool` its `name` (the upstream's
   * own); resolves with the serialized result.
   */
  callTool(tool: string, paramsJson: string, options: DirectCallOptions, questions?: SessionQuestions): Promise<string> {
    const interaction = options.interaction;
    return interaction ? this.#callInRounds(tool, paramsJson, options, interaction, questions) : this.#callOnce(tool, paramsJson, options, questions);
  }

  async #callInRounds(tool: string, paramsJson: string, options: DirectCallOptions, interaction: Interaction, questions: SessionQuestions | undefined): Promise<string> {
    // A modern upstream asks in rounds (MRTR): the connector holds the call, relays each round and
    // retries with the answers, so the agent's side is the same for upstreams of either era.
    let params = paramsJson;
    // The call's own params, parsed once: each round adds its answers to them.
    let base: Record<string, unknown> | undefined;
    for (let round = 0; ; round++) {
      const left = options.deadline === undefined ? options.timeoutMs : options.deadline - Date.now();
      if (left <= 0) throw new SdkError(SdkErrorCode.RequestTimeout, "no answer within the call's budget");
      try {
        return await this.#callOnce(tool, params, round === 0 ? options : { ...options, timeoutMs: Math.min(options.timeoutMs, left) }, questions);
      } catch (error) {
        if (!(error instanceof InputRequiredRound) || round >= MAX_INPUT_ROUNDS) {
          if (error instanceof InputRequiredRound) throw new ManifoldError("upstream_error", `the upstream asked for input more than ${MAX_INPUT_ROUNDS} times`, { reason: INPUT_REQUIRED });
          throw error;
        }
        const { inputRequests, requestState } = error.result;
        // Checked as the gateway reads the round (`InputRequiredReply`: 1 to 16 questions, keys of 1 to
        // 128 characters), before it takes a place among the caller's rounds out: relayed, a round the
        // gateway refuses was answered "malformed" to the agent at once while the connector held it,
        // unanswerable, for the call's whole budget; four of them refused the caller's calls of another
        // upstream's eliciting tool (`too_many_calls`) until then (unrelayableRounds.e2e).
        const none = inputRequests === undefined || (isRecord(inputRequests) && Object.keys(inputRequests).length === 0);
        const requests = none ? undefined : InputRequiredReply.shape.inputRequests.safeParse(inputRequests);
        if (requests?.success === false || (requestState !== undefined && typeof requestState !== "string")) {
          throw new ManifoldError("upstream_error", "the upstream's input_required result is malformed", { reason: INPUT_REQUIRED });
        }
        const ask = (questions: Record<string, InputRequest>) => () => interaction.ask(questions);
        const inputResponses = requests ? await (options.idle ? options.idle(ask(requests.data)) : ask(requests.data)()) : {};
        base ??= JSON.parse(paramsJson) as Record<string, unknown>;
        params = JSON.stringify({ ...base, inputResponses, ...(requestState !== undefined ? { requestState } : {}) });
      }
    }
  }

  /** `questions`: a 2025 session's, what a question on the call's resumed stream is read against (none: each is refused). */
  #callOnce(tool: string, paramsJson: string, options: DirectCallOptions, questions?: SessionQuestions): Promise<string> {
    // String ids cannot collide with the SDK client's numeric ids on the same session.
    const id = `m${++this.#nextId}`;
    const progress = options.onprogress ? `"progressToken":"${id}"` : "";
    // A call whose agent may be asked declares what the agent may be asked (2026-07-28: per request), a task call the extension.
    let envelope =
      (options.interaction || options.tasks) && this.#era.modern
        ? envelopeMembers(this.#era.protocolVersion, { ...options.interaction?.capabilities, ...(options.tasks ? TASKS_DECLARED : {}) })
        : this.#envelope;
    // 2026-07-28: an upstream sends log messages only for a request that names a level (server/utilities/logging).
    if (options.log && this.#era.modern) envelope = `${envelope},"${LOG_LEVEL_META_KEY}":"${options.log.level}"`;
    const members = this.#era.modern ? (progress ? `${envelope},${progress}` : envelope) : progress;
    const params = members ? withMeta(paramsJson, members) : paramsJson;
    const trace = traceHeaders();
    const base = this.#era.modern ? this.#modernHeaders(tool, paramsJson) : this.#headers;
    const headers = trace.traceparent ? { ...base, ...trace } : base;
    return new Promise<string>((resolve, reject) => {
      this.pool.dispatch(
        {
          method: "POST",
          path: this.#path,
          // The upstream joins the call's trace when tracing is on.
          headers,
          body: `{"jsonrpc":"2.0","id":"${id}","method":"tools/call","params":${params}}`,
          headersTimeout: options.timeoutMs,
          bodyTimeout: options.timeoutMs,
        },
        new NamedHeaders(
          new ToolCallHandler(
            id,
            this.#era,
            options,
            resolve,
            (error) => reject(this.#failed(id, error, options)),
            () => this.#notifyCancelled(id),
            (request, refusal, outOfRange) =>
              void (outOfRange === undefined ? this.#relay(request, refusal === undefined ? options.interaction : undefined, refusal) : this.#answerRequest(request.id, { error: requestOutOfRange(outOfRange) })).catch(() => undefined),
            this.#resumer,
            trace,
            questions,
          ),
          ToolCallHandler.HEADERS,
        ),
      );
    });
  }

  /**
   * A 2026-07-28 call's request headers: the connection's, `Mcp-Name`, and `Mcp-Param-*` for the
   * parameters the tool declares with `x-mcp-header`: only then are the arguments parsed, so a
   * call to any other tool costs one map lookup.
   */
  #modernHeaders(tool: string, paramsJson: string): Record<string, string> {
    const declared = this.#era.modern ? this.#era.paramHeaders?.get(tool) : undefined;
    if (declared) {
      const { arguments: args } = JSON.parse(paramsJson) as { arguments?: unknown };
      return { ...this.#headers, "mcp-name": headerValue(tool), ...paramHeaderValues(declared, args) };
    }
    let headers = this.#toolHeaders.get(tool);
    if (!headers) {
      // Tool names come from the registry's pins, but the map stays bounded all the same.
      if (this.#toolHeaders.size >= 4_096) this.#toolHeaders.clear();
      this.#toolHeaders.set(tool, (headers = { ...this.#headers, "mcp-name": headerValue(tool) }));
    }
    return headers;
  }

  /**
   * A 2025-era upstream's request on the call's own stream (so it is this call's): relayed to the
   * agent when it may be asked, refused otherwise (`refusal` says why, to the upstream); the answer
   * is POSTed back on the session.
   */
  async #relay(request: JsonRpcAnswer, interaction: Interaction | undefined, refusal = "the caller may not be asked anything"): Promise<void> {
    const id: unknown = request.id;
    // One that could not be answered (`#answerRequest`) is not put to the agent either.
    if (typeof id !== "string" && typeof id !== "number") return;
    let answer: object;
    try {
      if (!interaction) throw new ManifoldError("forbidden", `request refused: ${refusal}`);
      const asked = InputRequest.parse({ method: request.method, params: request.params });
      const answers = await interaction.ask({ r: asked });
      if (!answers.r) throw new ManifoldError("upstream_error", "the caller did not answer the request");
      answer = { result: answers.r };
    } catch (error) {
      answer = { error: { code: -32603, message: error instanceof ManifoldError ? error.message : "the request could not be relayed" } };
    }
    await this.#answerRequest(id, answer);
  }

  /** POSTs the answer (`{ result }` or `{ error }`) to the upstream's request `id` on the session. */
  async #answerRequest(id: unknown, answer: object): Promise<void> {
    // A JSON-RPC id is a string or a number: any other (an array nested 100,000 deep overflowed the
    // stack stringifying the answer, and ended the connector) is not answered.
    if (typeof id !== "string" && typeof id !== "number") return;
    const body = JSON.stringify({ jsonrpc: "2.0", id, ...answer });
    await this.pool
      .request({ method: "POST", path: this.#path, headers: this.#headers, body, headersTimeout: this.acceptMs, bodyTimeout: this.acceptMs })
      .then((r) => r.body.dump(), () => undefined);
  }

  /**
   * 2025-11-25: the call's stream, ended after an event id, asked for again with a GET naming the
   * last event it carried (basic/transports, "Resumability and Redelivery"); what comes back is read
   * by the same handler, on the same bounds, as the rest of the call's stream.
   */
  #resume(lastEventId: string, handler: ToolCallHandler, timeoutMs: number): void {
    this.pool.dispatch(
      {
        method: "GET",
        path: this.#path,
        headers: { ...this.#resumeHeaders, ...handler.trace, "last-event-id": lastEventId },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      },
      new NamedHeaders(handler, ToolCallHandler.HEADERS),
    );
  }

  /**
   * Aborting the POST closes its stream; a 2025-era upstream also hears why, as that revision asks.
   * Bounded per upstream (`CancellationNotices`): an upstream that answers none holds a few connections, not its pool.
   */
  #notifyCancelled(id: string): void {
    if (this.#era.modern) return;
    const body = JSON.stringify({ jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: id, reason: "cancelled by the client" } });
    this.#notices.send(() =>
      this.pool
        .request({ method: "POST", path: this.#path, headers: this.#headers, body, headersTimeout: this.acceptMs, bodyTimeout: this.acceptMs })
        .then((r) => r.body.dump()),
    );
  }

  /** A timed-out request is cancelled upstream too, so the upstream stops working on it. */
  #failed(id: string, error: unknown, options: DirectCallOptions): Error {
    const code = (error as { code?: string }).code;
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      this.#notifyCancelled(id);
      return new SdkError(SdkErrorCode.RequestTimeout, `no answer within ${options.timeoutMs} ms`);
    }
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** A body or event as JSON-RPC; one that is not JSON is `UnreadableAnswer`, its text not quoted. */
function answerOf(text: string): JsonRpcAnswer {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new UnreadableAnswer();
  }
  // `null` (or any non-object) read as a message threw a TypeError, taken for an unreachable
  // upstream: its shared session was dropped and its breaker counted, for every caller.
  if (typeof message !== "object" || message === null || Array.isArray(message)) throw new UnreadableAnswer();
  return message as JsonRpcAnswer;
}

/** One tools/call response as undici delivers it: collected (JSON) or parsed as it streams (SSE). */
class ToolCallHandler implements Dispatcher.DispatchHandler {
  /** The response headers `onResponseStart` reads (`NamedHeaders`). */
  static readonly HEADERS = ["content-type", "retry-after"] as const;
  #status = 0;
  #sse = false;
  /** A 429's or 503's `Retry-After` (ms), when it had a valid one. */
  #retryAfterMs: number | undefined;
  #chunks: Buffer[] = [];
  #received = 0;
  /** Pieces of the answer so far: informational responses (`MAX_INFORMATIONAL`), then body chunks (`PIECE_BYTES`). */
  #pieces = 0;
  /** Requests the upstream sent on this call's stream (`CALL_REQUESTS`). */
  #requests = 0;
  #settled = false;
  /** SSE only: the event parser (any line ending, multi-line data), fed text decoded across chunk boundaries. */
  #events: EventSourceParser | undefined;
  #decoder: StringDecoder | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  /** Aborts this request on cancellation; forgotten once it settles (a later round's request registers its own). */
  #cancel: (() => void) | undefined;
  /** Ends the request at the call's deadline (`DirectCallOptions.deadline`); grouped, as every call sets one. */
  #deadline: GroupedTimer | undefined;
  /** The request under way: the POST, or the GET resuming its stream. */
  #request: Dispatcher.DispatchController | undefined;
  /** 2025 only: the last event id the call's stream carried, the `retry` it asked for, and the GETs that resumed it. */
  #lastEventId: string | undefined;
  #retryMs: number | undefined;
  #resumes = 0;
  #resumeTimer: NodeJS.Timeout | undefined;
  /** 2025 only: what the resumed streams carried (`ResumedStream`), once the call's stream was resumed. */
  #resumed: ResumedStream | undefined;
  /** 2025 only: the session's calls ended before this one began (`SessionQuestions.mark`). */
  readonly #since: number;
  /**
   * A resumption is pending: waiting for its `retry`, or its GET dispatched and not yet started
   * (undici starts a request once it has a connection: the pool's 128 may all be busy, a new one's
   * handshake under way). No request of the call is under way meanwhile for a cancel to abort.
   */
  #resuming = false;
  /** When resuming must end: the call's deadline, or `timeoutMs` after its first request (read on the clock only then). */
  #resumeBy = 0;

  constructor(
    readonly id: string,
    readonly era: DirectEra,
    readonly options: DirectCallOptions,
    readonly resolve: (result: string) => void,
    readonly reject: (error: unknown) => void,
    readonly notifyCancelled: () => void,
    /**
     * `refusal`: why the request is refused, not put to this call's agent (one on a resumed stream:
     * `RESUMED_QUESTION`); `outOfRange`: where it holds a number no double can hold (answered -32600).
     */
    readonly onrequest: (request: JsonRpcAnswer, refusal: string | undefined, outOfRange?: string) => void,
    /** 2025 only: asks for the call's stream again (`DirectCaller.#resume`). */
    readonly resume: Resumer | undefined,
    /** The call's trace headers, which a resuming GET carries too. */
    readonly trace: Readonly<Record<string, string>>,
    /** 2025: the session's questions and callers (`SessionQuestions`), read as the call starts: its `mark`. */
    readonly questions: SessionQuestions | undefined,
  ) {
    this.#since = questions?.mark ?? 0;
    this.#bound();
  }

  /**
   * The call's deadline and cancellation hold from its dispatch, not from when undici gives its
   * request a connection: the upstream's pool (128) may be held by requests it does not answer.
   * Started there, a call still waiting at its deadline was failed by nobody here: its agent was told
   * `upstream_timeout` and the upstream ran the call seconds later, once a connection freed
   * (resumeRaces.e2e). A call that fails or is cancelled before its request starts is never sent,
   * and the upstream, which never saw it, is not told it was cancelled.
   */
  #bound(): void {
    const { deadline } = this.options;
    // The call path always has a deadline: the clock is read for the others only.
    this.#resumeBy = deadline ?? Date.now() + this.options.timeoutMs;
    if (deadline !== undefined) {
      this.#deadline = new GroupedTimer(Math.max(deadline - Date.now(), 1), () => {
        this.#fail(new SdkError(SdkErrorCode.RequestTimeout, "no answer within the call's budget"));
        if (this.#request) this.notifyCancelled();
        this.#request?.abort(new Aborted("deadline"));
      });
    }
    if (!this.options.cancellation) return;
    this.#cancel = () => {
      if (this.#request) this.notifyCancelled();
      // No request under way to fail it: not started yet, or waiting to resume (its `retry`, or a
      // connection for its GET). Checked on the timer alone, a cancel while the GET waited for a
      // connection was lost: the GET was sent once one was free, and the call held to its deadline.
      if (this.#resuming || !this.#request) this.#fail(new Error("the call was cancelled"));
      this.#request?.abort(new Aborted("cancelled"));
    };
    this.options.cancellation.onCancel(this.#cancel);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    const first = this.#request === undefined;
    this.#request = controller;
    // Failed or cancelled while it waited for a connection: not sent.
    if (first && this.#settled) return controller.abort(new Aborted("settled"));
    if (!first) {
      this.#resuming = false;
      // Cancelled, timed out or failed while the GET waited for a connection: it is not sent. Sent,
      // nothing ended it (the call's deadline aborted the POST before it), and an upstream writing a
      // comment now and then held it open for good, long after the call had failed (resumeRaces.e2e).
      if (this.#settled) return controller.abort(new Aborted("settled"));
      // A resuming GET: a response of its own, read afresh (an event cut off by the end is lost).
      this.#status = 0;
      this.#sse = false;
      this.#chunks = [];
      this.#events = undefined;
      this.#decoder = undefined;
    }
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // Each parsed as a response and never counted, endless 1xx held a call for its whole budget and
    // slowed another tenant's calls 7 -> 102 ms (p50) meanwhile.
    if (statusCode < 200 && ++this.#pieces > MAX_INFORMATIONAL) {
      this.#fail(new ManifoldError("upstream_error", `the upstream sent more than ${MAX_INFORMATIONAL} informational (1xx) responses to one call`));
      return controller.abort(new Aborted("too many informational responses"));
    }
    this.#status = statusCode;
    this.#sse = String(headers["content-type"] ?? "").includes("text/event-stream");
    if (statusCode !== 200 && PUSHBACK_STATUSES.has(statusCode)) this.#retryAfterMs = retryAfterMs(headers["retry-after"]);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    const max = this.options.maxResultBytes;
    this.#received += chunk.length;
    if (this.#status !== 200 || !this.#sse) {
      if (max !== undefined && this.#received > max + ANSWER_SLACK) return this.#tooLarge(controller, max);
      if (max !== undefined && this.#tooManyPieces(controller, max + ANSWER_SLACK)) return;
      this.#chunks.push(chunk);
      return;
    }
    // A stream carries the answer and the call's notifications: one event is bounded by the answer's
    // size, the whole stream by what the answer and far more notifications than a call passes on
    // could fill. Past it the upstream is only burning this process's time (endless tiny events once
    // slowed other tenants' calls ~47× for each call's whole budget).
    const streamMax = max === undefined ? undefined : max + ANSWER_SLACK + CALL_STREAM_NOTIFICATION_BYTES;
    if (streamMax !== undefined && this.#received > streamMax) return this.#tooLarge(controller, streamMax);
    if (streamMax !== undefined && this.#tooManyPieces(controller, streamMax)) return;
    this.#controller = controller;
    this.#decoder ??= new StringDecoder("utf8");
    this.#events ??= createParser({
      onEvent: (event) => this.#onEvent(event),
      onError: (error: ParseError) => {
        if (error.type === "max-buffer-size-exceeded") this.#tooLarge(controller, max!);
      },
      onRetry: (ms: number) => void (this.#retryMs = ms),
      ...(max !== undefined ? { maxBufferSize: max + ANSWER_SLACK } : {}),
    });
    try {
      this.#events.feed(this.#decoder.write(chunk));
    } catch (error) {
      this.#fail(error);
      controller.abort(new Aborted("unreadable"));
    }
  }

  /** One SSE event: the call's answer ends the request; a request or notification on the call's stream is relayed. */
  #onEvent(event: EventSourceMessage): void {
    if (this.#settled) return;
    // A priming event (an id, empty data: SEP-1699) counts too: it is what the stream resumes from.
    if (this.resume && event.id !== undefined) this.#lastEventId = RESUMABLE_ID.test(event.id) ? event.id : undefined;
    if (!event.data) return;
    const message = answerOf(event.data);
    const request = message.method !== undefined && message.id !== undefined;
    // A notification or request holding a number read as Infinity would reach the agent with `null`
    // there: a notification is dropped, a request answered -32600 naming where (dropped, the upstream
    // waited for its own timeout), and counted as any other.
    if (message.id !== this.id) {
      const outOfRange = unreadableNumbersOrDepth(event.data, message, Infinity);
      if (typeof outOfRange === "string") {
        if (request && this.#tookRequest()) this.onrequest(message, undefined, outOfRange);
        return;
      }
    }
    // A resumed stream may carry other calls' messages too (`ResumedStream`).
    const resumed = this.#resumes > 0 ? (this.#resumed ??= new ResumedStream(this.id)) : undefined;
    resumed?.sees(message);
    if (message.id === this.id) {
      for (const params of resumed?.release() ?? []) this.options.log?.send(params);
      this.#answer(message, event.data);
      // The answer is in: the rest of the stream is of no use, so the request ends here.
      this.#controller?.abort(new Aborted("answered"));
      return;
    }
    if (request) {
      if (this.#tookRequest()) this.onrequest(message, this.#refusal(message.id, resumed));
      return;
    }
    const progress = message.params;
    if (message.method === "notifications/progress" && progress?.progressToken === this.id && this.options.onprogress) {
      const { progressToken: _token, ...rest } = progress;
      this.options.onprogress(rest);
    } else if (message.method === "notifications/message" && this.options.log) {
      // On the call's own stream, so it is this call's; on a resumed one, once the answer shows it was.
      if (resumed) resumed.hold(message.params, event.data.length);
      else this.options.log.send(message.params);
    }
  }

  /**
   * Why a question of `id` on the call's stream is refused, if it is. On the call's own stream it is
   * the call's; on a resumed one, only when nothing there was another call's and the session shows
   * it harmless (`SessionQuestions.harmless`). Its id is noted either way, so that a replay of it on
   * another call's resumed stream is known for one.
   */
  #refusal(id: unknown, resumed: ResumedStream | undefined): string | undefined {
    const questions = this.questions;
    if (typeof id !== "string" && typeof id !== "number") return resumed ? RESUMED_QUESTION : undefined;
    const refused = resumed !== undefined && (resumed.foreign || !questions?.harmless(id, this.id, this.options.caller, this.#since));
    questions?.asked(id, this.id);
    if (!refused) return undefined;
    questions?.refused(this.id);
    return RESUMED_QUESTION;
  }

  /** Counts one more request of the upstream's on the call's stream: past `CALL_REQUESTS` the call fails, and the request is not answered. */
  #tookRequest(): boolean {
    if (++this.#requests <= CALL_REQUESTS) return true;
    this.#fail(new ManifoldError("upstream_error", `the upstream sent more than ${CALL_REQUESTS} requests during one call`));
    this.#controller?.abort(new Aborted("too many requests"));
    return false;
  }

  /** Counts one more piece; past what `bound` bytes come in (`PIECE_BYTES` each), the call fails and the request ends. */
  #tooManyPieces(controller: Dispatcher.DispatchController, bound: number): boolean {
    if (++this.#pieces * PIECE_BYTES <= bound) return false;
    this.#fail(new ManifoldError("upstream_error", `the upstream sent its answer in more than ${Math.floor(bound / PIECE_BYTES)} pieces`));
    controller.abort(new Aborted("too many pieces"));
    return true;
  }

  #tooLarge(controller: Dispatcher.DispatchController, max: number): void {
    this.#fail(new ResultTooLarge(max, this.#received));
    controller.abort(new Aborted("too large"));
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    // One chunk (a small answer, the usual case) is decoded where it is, not copied first.
    const chunks = this.#chunks;
    const text = chunks.length === 1 ? chunks[0]!.toString() : Buffer.concat(chunks).toString();
    // A resuming GET answered with anything but an event stream: the stream is not there to resume.
    if (this.#resumes > 0 && (this.#status !== 200 || !this.#sse)) return this.#streamEnded(`resuming it was answered HTTP ${this.#status}${this.#status === 200 ? " without an event stream" : ""}`);
    if (this.#status !== 200) {
      // Pushed back (rate limited, overloaded): the status and its Retry-After say it all, in either
      // era; a JSON-RPC error in the body is not read (its text may quote what the upstream holds).
      if (PUSHBACK_STATUSES.has(this.#status)) return this.#fail(new UpstreamHttpStatus(this.#status, this.#retryAfterMs));
      // A modern upstream answers a refused request (unsupported version, header mismatch) with a JSON-RPC error.
      if (this.era.modern) return this.#fail(jsonRpcError(text) ?? new UpstreamHttpStatus(this.#status));
      // The upstream forgot the session (restarted): the caller opens a new one and sends the call again.
      const forgotten = this.era.sessionId !== undefined && sessionRefused(this.#status, text.slice(0, 200));
      return this.#fail(forgotten ? new SessionNotFound(`upstream answered HTTP ${this.#status}`) : new UpstreamHttpStatus(this.#status));
    }
    if (this.#sse) {
      // The call's stream ended (cleanly: a reset is `onResponseError`) without its answer.
      // 2025-11-25 (SEP-1699) lets a server end the connection after an event id, and asks the
      // client to resume after `retry` ms: so it is, within the call's budget and `MAX_RESUMES`.
      if (this.#resumeLater()) return;
      // Otherwise it is this call's broken answer, not an unreachable upstream: as a plain Error it
      // became `upstream_unavailable`, dropped the 2025 shared session and counted against the
      // upstream's circuit, and 8 such calls at once opened it for every caller of every tool
      // (endedCallStreams.e2e). 2026-07-28 has no resumption and closing is the client's cancel: a
      // server that ends early just answered badly.
      return this.#streamEnded(this.#resumes > 0 ? `resumed ${this.#resumes} times` : undefined);
    }
    let message: JsonRpcAnswer;
    try {
      message = answerOf(text);
    } catch (error) {
      return this.#fail(error);
    }
    this.#answer(message, text);
  }

  /** Resumes the stream after its `retry` when it may be (2025, an event id seen, attempts and budget left). */
  #resumeLater(): boolean {
    const lastEventId = this.#lastEventId;
    if (!this.resume || lastEventId === undefined || this.#resumes >= MAX_RESUMES) return false;
    const wait = Math.max(this.#retryMs ?? DEFAULT_RESUME_WAIT_MS, MIN_RESUME_WAIT_MS);
    const { timeoutMs } = this.options;
    const left = this.#resumeBy - Date.now();
    // An answer that could only come after the budget is not waited for.
    if (wait >= left) return false;
    this.#resumes++;
    this.#resuming = true;
    this.#resumeTimer = setTimeout(() => {
      this.#resumeTimer = undefined;
      if (this.#settled) return;
      try {
        this.resume!(lastEventId, this, Math.min(timeoutMs, left - wait));
      } catch {
        this.#streamEnded("it could not be resumed");
      }
    }, wait);
    return true;
  }

  /**
   * The call fails alone (`stream_ended`): no session dropped, no breaker counting it (it fails at
   * once and holds no slot, as `invalid_result`). A 2025 upstream may still be working on it (a
   * disconnection is no cancellation in that revision): it is told the call is cancelled.
   */
  #streamEnded(why: string | undefined): void {
    this.notifyCancelled();
    this.#fail(new ManifoldError("upstream_error", `the upstream ended the call's SSE stream without its answer${why ? ` (${why})` : ""}`, { reason: STREAM_ENDED }));
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#settled) return;
    this.#fail(this.options.cancellation?.cancelled ? new Error("the call was cancelled") : error);
  }

  /** `text`: the answer as it came (the JSON body, or the SSE event's data). */
  #answer(message: JsonRpcAnswer, text: string): void {
    this.#settle(() => {
      try {
        // One pass over the answer's text, which nests one level deeper than its result: no cost for
        // an answer too short to nest that deep and without an exponent. Only an answer that nests too
        // deep is walked to see whether its result does (the walk was ~3,000 instructions of a small
        // call); only one holding a number read as Infinity is walked for its path.
        const unreadable = unreadableNumbersOrDepth(text, message, JsonLimits.resultDepth + 1);
        if (typeof unreadable === "string") throw numberOutOfRange("the upstream", "tools/call answer", unreadable);
        const error = message.error;
        if (error) {
          // A JSON-RPC error has an integer code and a string message. Of anything else, building the
          // error threw inside undici's callback (a message of {"toString":1}) and the call never
          // settled, holding its slots for good; a code nested deep failed encoding the bus reply.
          if (!Number.isSafeInteger(error.code) || typeof error.message !== "string") {
            throw new ManifoldError("upstream_error", "the upstream answered tools/call with a JSON-RPC error that is not well formed", { reason: INVALID_RESULT });
          }
          throw new ProtocolError(error.code, error.message, error.data);
        }
        // A result is an object: anything else (or none) would be spliced into the agent's answer as broken JSON.
        if (typeof message.result !== "object" || message.result === null || Array.isArray(message.result)) {
          throw new ManifoldError("upstream_error", "the upstream answered tools/call with a result that is not an object");
        }
        if (unreadable === JSON_TOO_DEEP) mustNotNestTooDeep(message.result, "the upstream", "result");
        // A multi round-trip request wants the agent's input; relaying those rounds is not built yet.
        if (message.result?.resultType === "input_required") {
          if (this.options.interaction) throw new InputRequiredRound(message.result as { inputRequests?: unknown });
          throw new ManifoldError("upstream_error", "the upstream asked for the caller's input (input_required), which Manifold does not relay", { reason: INPUT_REQUIRED });
        }
        // A call that may answer with a task may answer one (the gateway bounds it); anything else is a tool result.
        const answered = (this.options.tasks || this.options.task !== undefined) && isTaskAnswer(message.result) ? message.result : callResultOf(message.result, "the upstream");
        const result = judgedResult(answered as Record<string, unknown>, this.era.modern, this.options.tasks === true);
        // Passed on as written when it may be (`resultTextOf`): written again, it was the answer's costliest step.
        this.resolve((result === message.result ? resultTextOf(text) : undefined) ?? JSON.stringify(result));
      } catch (error) {
        this.reject(error);
      }
    });
  }

  #fail(error: unknown): void {
    this.#settle(() => this.reject(error));
  }

  #settle(action: () => void): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#deadline?.clear();
    clearTimeout(this.#resumeTimer);
    if (this.#cancel) this.options.cancellation?.offCancel(this.#cancel);
    action();
  }
}

/** The JSON-RPC error in a refusal's body, when it carries one. */
function jsonRpcError(text: string): ProtocolError | undefined {
  try {
    const { error } = JSON.parse(text) as JsonRpcAnswer;
    return error && typeof error.code === "number" && typeof error.message === "string" ? new ProtocolError(error.code, error.message, error.data) : undefined;
  } catch {
    return undefined;
  }
}
