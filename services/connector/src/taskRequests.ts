import { ManifoldError, TaskRequest, BusHeader } from "@manifold/contracts";
import { replyWithError, type Msg } from "@manifold/bus";
import { mapUpstreamError } from "./upstreamErrors.js";
import type { UpstreamSession } from "./upstreamSession.js";

const DECODER = new TextDecoder();

export interface TaskRequestContext {
  target: string;
  /** The upstream's call budget: `tasks/result` waits until the task ends, at most this long. */
  timeoutMs: number;
  /** The session a call with these pass-through headers runs on: the one that holds its tasks. */
  sessionFor(upstreamHeaders: string | undefined): UpstreamSession;
}

/**
 * One request about an upstream task (`Subjects.upstreamTasks`), on the session that created it.
 * The gateway has already checked that its caller holds the task (the task id it decoded is the
 * upstream's own); here the bytes are only checked for shape, and the upstream's answer (or
 * error) is the reply.
 */
export async function serveTaskRequest(msg: Msg, context: TaskRequestContext): Promise<void> {
  let request: TaskRequest;
  try {
    request = TaskRequest.parse(JSON.parse(DECODER.decode(msg.data)));
  } catch {
    return replyWithError(msg, new ManifoldError("invalid_request", "a task request names a task method and a task id"));
  }
  try {
    const session = context.sessionFor(msg.headers?.get(BusHeader.upstreamHeaders) || undefined);
    await session.ready(context.timeoutMs);
    msg.respond(new TextEncoder().encode(await session.taskRequest(request, context.timeoutMs)));
  } catch (error) {
    replyWithError(msg, mapUpstreamError(error, context.target, context.timeoutMs));
  }
}
