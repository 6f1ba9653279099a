import { NOTIFICATION_BYTES_PER_CALL, TASK_STATUS_PREFIX, isRecord, notificationBudget } from "@manifold/contracts";
import type { UpstreamSession } from "./upstreamSession.js";
import { subjectUnder } from "./callNotifications.js";
import { redactResult } from "./withheldValues.js";

/** Tasks one upstream session watches for a gateway at most (the oldest is forgotten first). */
const MAX_WATCHED = 1_000;
/** A status notification larger than this is not relayed (a Task is a handful of short fields). */
const MAX_BYTES = 16 * 1024;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/** Where one task's notifications go, and what is left of its budget (a call's, `NOTIFICATION_BYTES_PER_CALL`). */
interface Watch {
  readonly subject: string;
  readonly budget: ReturnType<typeof notificationBudget>;
}

/**
 * Relays a 2025 upstream's `notifications/tasks/status` to the gateway session that created the
 * task, and only to it: the task call names a subject (`BusHeader.taskStatus`, under
 * `TASK_STATUS_PREFIX`, one per task), remembered per upstream session (task ids are the
 * session's own: another session's task with the same id is another task) until the task ends.
 */
export class TaskStatusRelay {
  readonly #watched = new WeakMap<UpstreamSession, Map<string, Watch>>();
  readonly #publish: (subject: string, data: string) => void;

  constructor(publish: (subject: string, data: string) => void) {
    this.#publish = publish;
  }

  /** After a task-augmented call answered `resultText` on `session`: the task's notifications go to the subject `named` (under `TASK_STATUS_PREFIX`). */
  watch(session: UpstreamSession, named: string | undefined, resultText: string): void {
    const subject = subjectUnder(TASK_STATUS_PREFIX, named);
    if (!subject) return;
    let taskId: unknown;
    try {
      taskId = (JSON.parse(resultText) as { task?: { taskId?: unknown } }).task?.taskId;
    } catch {
      return;
    }
    if (typeof taskId !== "string") return;
    let tasks = this.#watched.get(session);
    if (!tasks) {
      const watched = (tasks = new Map());
      this.#watched.set(session, watched);
      session.taskStatus = (params) => this.#heard(session, watched, params);
    }
    tasks.set(taskId, { subject, budget: notificationBudget(NOTIFICATION_BYTES_PER_CALL) });
    if (tasks.size > MAX_WATCHED) tasks.delete(tasks.keys().next().value!);
  }

  #heard(session: UpstreamSession, tasks: Map<string, Watch>, params: unknown): void {
    if (!isRecord(params) || typeof params.taskId !== "string") return;
    const watch = tasks.get(params.taskId);
    if (!watch) return;
    const terminal = TERMINAL.has(String(params.status));
    if (terminal) tasks.delete(params.taskId);
    const data = JSON.stringify(params);
    if (data.length > MAX_BYTES) return;
    // A status message may quote what the task was sent: cleaned as the task's result is.
    const clean = redactResult(data, session.credentials);
    // Within the task's budget, as a call's progress and log messages are (an upstream repeating
    // "working" put statuses on the bus for as long as the session lived); its end always goes.
    if (clean.length <= MAX_BYTES && (watch.budget.take(clean.length) || terminal)) this.#publish(watch.subject, clean);
  }
}
