import { InputRequest, InputRequiredReply, isRecord, MAX_INPUT_ROUNDS, ManifoldError, INPUT_REQUIRED, TASK_EXTENSION } from "@manifold/contracts";
import { LOG_LEVEL_META_KEY, SdkError, SdkErrorCode } from "@modelcontextprotocol/client";
import type { Pool } from "undici";
import { traceHeaders } from "@manifold/telemetry";
import { cancellationNoticesOf, type CancellationNotices } from "./cancellationNotices.js";
import type { DirectCallOptions, DirectEra } from "./directCall.js";
import { envelopeMembers, headerValue, paramHeaderValues, withMeta } from "./modernRequest.js";
import type { Interaction } from "./heldCall.js";
import { requestOutOfRange } from "./finiteNumbers.js";
import { NamedHeaders } from "./namedHeaders.js";
import type { SessionQuestions } from "./sessionQuestions.js";
import { InputRequiredRound, type JsonRpcAnswer } from "./toolCallAnswer.js";
import { ToolCallHandler, type Resumer } from "./toolCallHandler.js";

/** The tasks extension as a request declares it (SEP-2663). */
const TASKS_DECLARED = { extensions: { [TASK_EXTENSION]: {} } };
/**
 * A cancellation or an answer to the upstream's request is ended after this long (`CONNECT_TIMEOUT_MS`'s
 * default): sent to an upstream that answers nothing, it held its socket for the pool's 300 s.
 */
const DEFAULT_ACCEPT_MS = 10_000;

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
