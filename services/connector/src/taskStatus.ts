import { NOTIFICATION_BYTES_PER_CALL, TASK_STATUS_PREFIX, isRecord, notificationBudget, upstreamScoped } from "@manifold/contracts";
import type { UpstreamSession } from "./upstreamSession.js";
import { subjectUnder } from "./callNotifications.js";
import { redactResult } from "./withheldValues.js";

/** Tasks one upstream session watches for gateways at most (then the oldest of the caller holding the most is forgotten). */
const MAX_WATCHED = 1_000;
/** A status notification larger than this is not relayed (a Task is a handful of short fields). */
const MAX_BYTES = 16 * 1024;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/** Where one task's notifications go, and what is left of its budget (a call's, `NOTIFICATION_BYTES_PER_CALL`). */
interface Watch {
  readonly subject: string;
  readonly budget: ReturnType<typeof notificationBudget>;
  /** Whose task call made it (`BusHeader.caller`; "" for none): a full session gives way by caller. */
  readonly caller: string;
}

/** One session's watched tasks on its current connection (by the upstream's task id, oldest first), and how many each caller holds. */
interface Watched {
  /** The upstream connection (`Connection.id`) whose task ids these are. */
  readonly connection: string;
  readonly tasks: Map<string, Watch>;
  readonly perCaller: Map<string, number>;
}

/**
 * Relays a 2025 upstream's `notifications/tasks/status` to the gateway session that created the
 * task, and only to it: the task call names a subject (`BusHeader.taskStatus`, under
 * `TASK_STATUS_PREFIX`, one per task), remembered per upstream session and connection (task ids
 * are the connection's own: a restarted upstream numbers its tasks again, and the same id on
 * another session or connection is another task) until the task ends. A new connection's first
 * task forgets the old connection's, which went with it; a status heard on another connection
 * than the watch's goes nowhere (before, the old watch sent another caller's task status there).
 */
export class TaskStatusRelay {
  readonly #watched = new WeakMap<UpstreamSession, Watched>();
  readonly #publish: (subject: string, data: string) => void;
  /** The upstream's own subjects for task statuses: the only ones its connectors may publish on. */
  readonly #under: string;

  constructor(publish: (subject: string, data: string) => void, upstream: string) {
    this.#publish = publish;
    this.#under = upstreamScoped(TASK_STATUS_PREFIX, upstream);
  }

  /** After a task-augmented call of `caller` answered `resultText` on `session`'s `connection`: the task's notifications go to the subject `named` (under `TASK_STATUS_PREFIX`). */
  watch(session: UpstreamSession, connection: string, named: string | undefined, resultText: string, caller = ""): void {
    const subject = subjectUnder(this.#under, named);
    if (!subject) return;
    let taskId: unknown;
    try {
      taskId = (JSON.parse(resultText) as { task?: { taskId?: unknown } }).task?.taskId;
    } catch {
      return;
    }
    // A connection closed since the call answered took its task with it.
    if (typeof taskId !== "string" || connection !== session.connectionId) return;
    let watched = this.#watched.get(session);
    if (watched?.connection !== connection) {
      const created: Watched = (watched = { connection, tasks: new Map(), perCaller: new Map() });
      this.#watched.set(session, created);
      session.taskStatus = (params, from) => this.#heard(session, created, params, from);
    }
    forget(watched, taskId);
    watched.tasks.set(taskId, { subject, budget: notificationBudget(NOTIFICATION_BYTES_PER_CALL), caller });
    watched.perCaller.set(caller, (watched.perCaller.get(caller) ?? 0) + 1);
    // A full session forgets the oldest task of the caller holding the most: one caller's tasks left
    // running on a shared session pushed every other caller's out (the oldest went, whoever's it was).
    if (watched.tasks.size > MAX_WATCHED) {
      const most = [...watched.perCaller].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
      for (const [id, watch] of watched.tasks) if (watch.caller === most) return forget(watched, id);
    }
  }

  #heard(session: UpstreamSession, watched: Watched, params: unknown, from: string): void {
    if (from !== watched.connection || !isRecord(params) || typeof params.taskId !== "string") return;
    const watch = watched.tasks.get(params.taskId);
    if (!watch) return;
    const terminal = TERMINAL.has(String(params.status));
    if (terminal) forget(watched, params.taskId);
    const data = JSON.stringify(params);
    if (data.length > MAX_BYTES) return;
    // A status message may quote what the task was sent: cleaned as the task's result is.
    const clean = redactResult(data, session.credentials);
    // Within the task's budget, as a call's progress and log messages are (an upstream repeating
    // "working" put statuses on the bus for as long as the session lived); its end always goes.
    if (clean.length <= MAX_BYTES && (watch.budget.take(clean.length) || terminal)) this.#publish(watch.subject, clean);
  }
}

/** Stops watching a task, if it was. */
function forget(watched: Watched, taskId: string): void {
  const watch = watched.tasks.get(taskId);
  if (!watch) return;
  watched.tasks.delete(taskId);
  const held = watched.perCaller.get(watch.caller)! - 1;
  if (held > 0) watched.perCaller.set(watch.caller, held);
  else watched.perCaller.delete(watch.caller);
}
