import { ManifoldError, NOTIFICATION_BYTES_PER_CALL, STREAM_ENDED, unreadableNumbersOrDepth } from "@manifold/contracts";
import { SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import { createParser, type EventSourceMessage, type EventSourceParser, type ParseError } from "eventsource-parser";
import { StringDecoder } from "node:string_decoder";
import type { Dispatcher } from "undici";
import type { DirectCallOptions, DirectEra } from "./directCall.js";
import { SessionNotFound, sessionRefused } from "./sessionExpiry.js";
import { ANSWER_SLACK, PUSHBACK_STATUSES, ResultTooLarge, UpstreamHttpStatus } from "./upstreamErrors.js";
import { retryAfterMs } from "./retryAfter.js";
import { answerOf, jsonRpcError, resultOfAnswer, type JsonRpcAnswer } from "./toolCallAnswer.js";
import { CALL_REQUESTS } from "./serverRequests.js";
import { GroupedTimer } from "./groupedTimer.js";
import { RESUMED_QUESTION, ResumedStream } from "./resumedStream.js";
import type { SessionQuestions } from "./sessionQuestions.js";

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

/** Asks for a 2025 call's stream again after `lastEventId`, read by `handler`. */
export type Resumer = (lastEventId: string, handler: ToolCallHandler, timeoutMs: number) => void;

/** Why a request was aborted from our side: the call was cancelled, or its SSE answer has arrived. */
class Aborted extends Error {}

/** One tools/call response as undici delivers it: collected (JSON) or parsed as it streams (SSE). */
export class ToolCallHandler implements Dispatcher.DispatchHandler {
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

  /** Settles the call with its answer (`text`: as it came, the JSON body or the SSE event's data). */
  #answer(message: JsonRpcAnswer, text: string): void {
    this.#settle(() => {
      try {
        this.resolve(resultOfAnswer(message, text, this.options, this.era.modern));
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
