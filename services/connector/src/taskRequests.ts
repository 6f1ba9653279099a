import { redactResult } from "./withheldValues.js";
import { ManifoldError, TaskRequest, BusHeader, TaskMode } from "@manifold/contracts";
import { replyWithError, type Msg } from "@manifold/bus";
import { mapUpstreamError } from "./upstreamErrors.js";
import { taskGone, type UpstreamSession } from "./upstreamSession.js";
import type { HeldCall } from "./heldCall.js";
import type { TaskRounds } from "./taskRounds.js";

const DECODER = new TextDecoder();

/** JSON-RPC "Invalid params". */
const INVALID_PARAMS = -32602;

/**
 * The upstream's own -32602 to a task request is the 2025-11-25 tasks spec's protocol error (an id
 * it no longer knows, a `tasks/cancel` of a task that ended: receivers MUST answer -32602), so the
 * agent hears -32602, not -32012 (`upstream_error`, the code only in `data.upstreamCode`). Its
 * message and data stay as cleaned for any upstream error.
 */
const taskError = (error: ManifoldError): ManifoldError =>
  error.code === "upstream_error" && error.data?.upstreamCode === INVALID_PARAMS ? new ManifoldError("invalid_task_request", error.message, error.data, { cause: error }) : error;

/** A call's `Manifold-Task` header (hostile bytes): how it asks for a task, or undefined when it names no mode. */
export const taskModeOf = (raw: string | undefined): TaskMode | undefined => (raw === TaskMode.asked || raw === TaskMode.offered ? raw : undefined);

export interface TaskRequestContext {
  target: string;
  /** The upstream's call budget: `tasks/result` waits until the task ends, at most this long. */
  timeoutMs: number;
  /**
   * The session a call with these pass-through headers runs on (the one that holds its tasks), held
   * like a call's until `release`: a `tasks/result` may wait for the task an hour, past the idle time.
   */
  sessionFor(upstreamHeaders: string | undefined, obtainedFor: string | undefined): { session: UpstreamSession; release: () => void };
  /** Holds the request like a call (heartbeats, and rounds of questions for its agent when it may be asked); `release` when answered. */
  hold(msg: Msg, deadline: number): HeldCall;
  release(held: HeldCall): void;
  /** One of the upstream's slots, as a call takes (`maxConcurrency`, shared between callers). */
  slot(msg: Msg, timeoutMs: number): Promise<() => void> | (() => void);
  /** 2025 upstreams' task questions for 2026-07-28 agents (`taskRounds.ts`). */
  rounds: TaskRounds;
}

/**
 * One request about an upstream task (`Subjects.upstreamTasks`), on the session and connection
 * that created it (on another, `task_not_found`: `UpstreamSession.taskRequest`).
 * The gateway has already checked that its caller holds the task (the task id it decoded is the
 * upstream's own); here the bytes are only checked for shape, and the upstream's answer (or
 * error) is the reply. A 2025 upstream asks a task's questions on the `tasks/result` stream: like
 * a call's, they are relayed to a 2025 agent when the request says it may be asked (`HeldCall`);
 * a 2026-07-28 agent reads them in `tasks/get` and answers with `tasks/update` (`TaskRounds`).
 * A 2026-07-28 upstream's tasks are mapped inside the session (`modernTasks.ts`).
 */
export async function serveTaskRequest(msg: Msg, context: TaskRequestContext): Promise<void> {
  let request: TaskRequest;
  try {
    request = TaskRequest.parse(JSON.parse(DECODER.decode(msg.data)));
  } catch {
    return replyWithError(msg, new ManifoldError("invalid_request", "a task request names a task method and a task id"));
  }
  const held = context.hold(msg, Date.now() + context.timeoutMs);
  const interaction = held.capabilities ? { ask: held.ask, capabilities: held.capabilities } : undefined;
  let releaseSession: (() => void) | undefined;
  let releaseSlot: (() => void) | undefined;
  try {
    // A task request holds the upstream like a call (a tasks/result waits for the task), so it takes
    // a slot: they went around the upstream's bound. Not a cancel: it must reach a saturated upstream.
    if (request.method !== "tasks/cancel") releaseSlot = await context.slot(msg, context.timeoutMs);
    const { session, release } = context.sessionFor(msg.headers?.get(BusHeader.upstreamHeaders) || undefined, msg.headers?.get(BusHeader.upstreamResource) || undefined);
    releaseSession = release;
    held.sentBy = session;
    await session.ready(context.timeoutMs);
    const caller = msg.headers?.get(BusHeader.caller) || undefined;
    let answer: string;
    if (session.modern) answer = await session.taskRequest(request, context.timeoutMs, interaction, caller);
    else if (request.method === "tasks/get" && caller && held.capabilities) answer = await context.rounds.get(session, request, caller, held.capabilities, context.timeoutMs);
    else if (request.method === "tasks/update") {
      // Answered here, not upstream: checked as `taskRequest` checks (its task went with its connection).
      if (request.connection !== session.connectionId) throw taskGone();
      if (caller) context.rounds.update(request, caller, request.inputResponses ?? {});
      answer = "{}";
    } else answer = await session.taskRequest(request, context.timeoutMs, interaction, caller);
    // A task's result is a call's result: cleaned of the credentials its session sent, as a call's is.
    held.respond(Buffer.from(redactResult(answer, session.credentials)));
  } catch (error) {
    held.fail(taskError(mapUpstreamError(error, context.target, context.timeoutMs)));
  } finally {
    releaseSlot?.();
    releaseSession?.();
    context.release(held);
  }
}
