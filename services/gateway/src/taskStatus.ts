import { TASK_STATUS_PREFIX, boundedTask, isRecord, upstreamScoped } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import { TaskSchema, type ServerNotification } from "@modelcontextprotocol/sdk/types.js";
import { createInbox, type Subscription } from "@nats-io/transport-node";

/** Tasks one session hears about at most: as many as it lists (the oldest is dropped first). */
const MAX_WATCHED = 100;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/**
 * An upstream's status notification as its task's owner hears it: a `Task`'s own fields, bounded
 * as its created Task and tasks/get are (`boundedTask`: the upstream's bytes are hostile), named by
 * the caller's handle; undefined when it is no Task after bounding (a `createdAt` past 64
 * characters is left out, and a Task needs one). Before, a 12 KB `statusMessage` or a 3 KB
 * `createdAt` reached the agent as written.
 */
export function statusNotification(params: unknown, handle: string) {
  if (!isRecord(params)) return undefined;
  let bounded: Record<string, unknown>;
  try {
    bounded = boundedTask(params);
  } catch {
    return undefined;
  }
  const task = TaskSchema.safeParse(bounded);
  return task.success ? { method: "notifications/tasks/status" as const, params: { ...task.data, taskId: handle } } : undefined;
}

interface Watch {
  readonly subscription: Subscription;
  readonly upstream: string;
  /** The caller's handle, once the task exists; the latest status heard before that waits here. */
  handle?: string;
  early?: unknown;
}

/** One task call's watch: the subject its connector publishes to, and what becomes of the call. */
export interface TaskWatch {
  readonly subject: string;
  /** The call created the task the caller knows as `handle`. */
  created(handle: string): void;
  /** The call created no task (it failed, or the upstream answered at once). */
  dropped(): void;
}

/**
 * A 2025 session's `notifications/tasks/status` (2025-11-25): each task call names a subject
 * of its own (under `TASK_STATUS_PREFIX`) where the connector holding the task publishes the
 * upstream's status notifications; they go out on this session's stream, and only there, with
 * the task id replaced by the caller's handle (and nothing but a Task's fields: the upstream's
 * bytes are hostile). A watch ends with its task, when the session closes, or when newer tasks
 * push it out.
 */
export class TaskStatusWatches {
  readonly #watches = new Map<string, Watch>();
  readonly #nc: NatsConnection;
  readonly #send: (notification: ServerNotification) => Promise<void>;
  readonly #mayHear: (handle: string) => boolean;
  readonly #dropped: (upstream: string) => void;

  /**
   * `mayHear`: whether the session's caller may still hear of the task (its tool denied or deselected
   * since: no). `dropped`: a status from `upstream` that was no Task (counted, its content nowhere).
   */
  constructor(nc: NatsConnection, send: (notification: ServerNotification) => Promise<void>, mayHear: (handle: string) => boolean, dropped: (upstream: string) => void) {
    this.#nc = nc;
    this.#send = send;
    this.#mayHear = mayHear;
    this.#dropped = dropped;
  }

  /** A watch for a task call to `upstream`: only its connectors may publish on the watch's subject. */
  open(upstream: string): TaskWatch {
    const subject = createInbox(upstreamScoped(TASK_STATUS_PREFIX, upstream));
    const watch: Watch = {
      upstream,
      subscription: this.#nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          let params: unknown;
          try {
            params = msg.json();
          } catch {
            return;
          }
          if (watch.handle === undefined) watch.early = params;
          else this.#relay(subject, watch, params);
        },
      }),
    };
    this.#watches.set(subject, watch);
    if (this.#watches.size > MAX_WATCHED) this.#end(this.#watches.keys().next().value!);
    return {
      subject,
      created: (handle) => {
        watch.handle = handle;
        if (watch.early !== undefined) this.#relay(subject, watch, watch.early);
      },
      dropped: () => this.#end(subject),
    };
  }

  /** The session closed: nothing more goes out on it. */
  close(): void {
    for (const subject of [...this.#watches.keys()]) this.#end(subject);
  }

  #relay(subject: string, { handle, upstream }: Watch, params: unknown): void {
    if (handle === undefined) return; // not before the task exists (`created`)
    const notification = statusNotification(params, handle);
    if (!notification) return this.#dropped(upstream);
    // Checked at each status, against the grant as it is now: a task of a tool denied since is gone
    // for its caller, its status with it (before, a denial left the statuses flowing to the end).
    if (!this.#mayHear(handle)) return this.#end(subject);
    if (TERMINAL.has(notification.params.status)) this.#end(subject);
    void this.#send(notification).catch(() => undefined);
  }

  #end(subject: string): void {
    this.#watches.get(subject)?.subscription.unsubscribe();
    this.#watches.delete(subject);
  }
}
