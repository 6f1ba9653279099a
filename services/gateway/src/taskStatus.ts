import { TASK_STATUS_PREFIX, upstreamScoped } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import { TaskSchema, type ServerNotification } from "@modelcontextprotocol/sdk/types.js";
import { createInbox, type Subscription } from "@nats-io/transport-node";

/** Tasks one session hears about at most: as many as it lists (the oldest is dropped first). */
const MAX_WATCHED = 100;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

/**
 * An upstream's status notification as its task's owner hears it: a `Task` and nothing more (the
 * upstream's bytes are hostile), named by the caller's handle; undefined when it is no Task.
 */
export function statusNotification(params: unknown, handle: string) {
  const task = TaskSchema.safeParse(params);
  return task.success ? { method: "notifications/tasks/status" as const, params: { ...task.data, taskId: handle } } : undefined;
}

interface Watch {
  readonly subscription: Subscription;
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

  /** `mayHear`: whether the session's caller may still hear of the task (its tool denied or deselected since: no). */
  constructor(nc: NatsConnection, send: (notification: ServerNotification) => Promise<void>, mayHear: (handle: string) => boolean) {
    this.#nc = nc;
    this.#send = send;
    this.#mayHear = mayHear;
  }

  /** A watch for a task call to `upstream`: only its connectors may publish on the watch's subject. */
  open(upstream: string): TaskWatch {
    const subject = createInbox(upstreamScoped(TASK_STATUS_PREFIX, upstream));
    const watch: Watch = {
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
          else this.#relay(subject, watch.handle, params);
        },
      }),
    };
    this.#watches.set(subject, watch);
    if (this.#watches.size > MAX_WATCHED) this.#end(this.#watches.keys().next().value!);
    return {
      subject,
      created: (handle) => {
        watch.handle = handle;
        if (watch.early !== undefined) this.#relay(subject, handle, watch.early);
      },
      dropped: () => this.#end(subject),
    };
  }

  /** The session closed: nothing more goes out on it. */
  close(): void {
    for (const subject of [...this.#watches.keys()]) this.#end(subject);
  }

  #relay(subject: string, handle: string, params: unknown): void {
    const notification = statusNotification(params, handle);
    if (!notification) return;
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
