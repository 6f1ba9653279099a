import { ManifoldError, RELATED_TASK, isRecord, type InputRequest } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { CallLog } from "./callLog.js";
import type { Interaction } from "./heldCall.js";
import { NO_CALL, SessionQuestions } from "./sessionQuestions.js";

/** A call (or task request) running on the session, with what the upstream may send it unattributed. */
export interface RunningCall {
  /** Absent for a task request of no known caller (it takes no log messages, and is asked nothing on a 2025 session). */
  readonly caller?: string | undefined;
  readonly interaction?: Interaction | undefined;
  readonly log?: CallLog | undefined;
  /** The upstream's own id of the task a 2025 `tasks/result` waits on: its questions name it. */
  readonly task?: string | undefined;
}

/**
 * What runs on one upstream session, and so who may hear what the upstream sends there without
 * saying for which call (a question, a log message): `UpstreamSession` runs the requests, this
 * decides where their unattributed messages go.
 */
export class RunningCalls {
  /**
   * Every call and task request running on this session now, on any path that shares a channel
   * the upstream may use without saying for which call (stdio, SSE, a 2025 session's GET stream):
   * a 2026-07-28 upstream's direct calls have none, and are not counted.
   */
  readonly #running = new Set<RunningCall>();
  /** The one caller every call on this session has come from so far; null once a second one came. */
  #onlyCaller: string | null | undefined;
  /** What the session's direct calls' resumed streams read their questions against (2025). */
  readonly questions: SessionQuestions;

  constructor(logger: Logger) {
    this.questions = new SessionQuestions(
      () => Array.from(this.#running, (call) => call.caller),
      // Never the question: its text is the upstream's, and may be another tenant's.
      (call) => logger.warn({ call }, "a question on a call's resumed stream was refused: it cannot be shown to be this caller's"),
    );
  }

  /** Counts `call` as running on this session while `run` runs. */
  async whileRunning<T>(call: RunningCall, run: () => Promise<T>): Promise<T> {
    if (call.caller !== undefined) this.#onlyCaller = this.#onlyCaller === undefined || this.#onlyCaller === call.caller ? call.caller : null;
    this.#running.add(call);
    try {
      return await run();
    } finally {
      this.#running.delete(call);
      this.questions.ended(call.caller);
    }
  }

  /**
   * A server-to-client request that reached the SDK client (stdio and SSE upstreams; a 2025
   * session's GET stream; a 2026-07-28 upstream's `input_required` rounds, which the client fulfils
   * through these handlers). It does not say which call it belongs to, unless it names a task a
   * `tasks/result` here waits on (`#waitingOn`); otherwise it is relayed only while exactly one
   * call runs on this session and its agent may be asked, and refused otherwise, so a
   * question never reaches another agent and no agent's answer reaches another's call. A 2025
   * upstream may also ask outside any call (work a call left running: a call that answered at
   * once asked 300 ms later, while another consumer's call ran alone), so there, as for log
   * messages, only if every call this session has served came from that call's caller. A
   * 2026-07-28 upstream asks only in a request's own result. Its id is noted as no call's stream's
   * (`SessionQuestions`): replayed on a call's resumed stream (a 2025 upstream's left-over work
   * asking on the GET stream), it was put to that call's agent, though another consumer's call had
   * left the work (1 asked, 1 answered; now refused).
   */
  async relay(request: InputRequest, id: string | number, modern: boolean): Promise<never> {
    this.questions.asked(id, NO_CALL);
    const waiting = this.#waitingOn(request);
    const [lone] = this.#running.size === 1 ? this.#running : [];
    const only = waiting ?? lone;
    const attributed = modern || waiting !== undefined || this.#soleCallerOf(only);
    if (!only?.interaction || !attributed) {
      const why =
        this.#running.size > 1
          ? "several calls are running and the request does not say whose it is"
          : !only?.interaction
            ? "no call on this session may ask its agent"
            : "this session serves several consumers and the request does not say whose it is";
      throw new ManifoldError("forbidden", `request refused: ${why}`);
    }
    const answers = await only.interaction.ask({ r: request });
    const answer = answers.r;
    if (!answer) throw new ManifoldError("upstream_error", "the caller did not answer the request");
    return answer as never;
  }

  /**
   * A log message that reached the SDK client (stdio and SSE upstreams; a 2025 session's GET
   * stream). It does not say which call it belongs to, nor whether a call that ended set it going
   * (server-everything logs every 5 s once toggled): it is relayed only while exactly one call runs
   * and every call this session has served came from that call's caller, else dropped, so one
   * agent never reads what another's call logged. (Direct calls read their own stream.)
   */
  log(params: unknown): void {
    const [only] = this.#running.size === 1 ? this.#running : [];
    if (this.#soleCallerOf(only)) only!.log?.send(params);
  }

  /**
   * The `tasks/result` waiting on the task a 2025 question names (`related-task`), which only that
   * task's caller sends: its questions are that caller's whatever else runs on the session. Before,
   * one caller's unanswered task held a `tasks/result` here, and every other caller's task questions
   * on the session were refused as unattributable until it ended.
   */
  #waitingOn(request: InputRequest): RunningCall | undefined {
    const related = (request.params?._meta as Record<string, unknown> | undefined)?.[RELATED_TASK];
    const taskId = isRecord(related) ? related.taskId : undefined;
    if (typeof taskId !== "string") return undefined;
    let found: RunningCall | undefined;
    for (const call of this.#running) {
      if (call.task !== taskId) continue;
      // Two requests waiting on one task (two replicas' rounds cannot be, one session's can): whose is unknown.
      if (found) return undefined;
      found = call;
    }
    return found;
  }

  /** Whether every call this session has served came from the caller of `call` (the only one running). */
  #soleCallerOf(call: RunningCall | undefined): boolean {
    return call?.caller !== undefined && call.caller === this.#onlyCaller;
  }
}
