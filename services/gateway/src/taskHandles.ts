import { Sealer } from "./sealer.js";

/** Where a task lives: the upstream, the connector replica whose upstream session holds it, the upstream's own id. */
export interface TaskHome {
  readonly upstream: string;
  readonly replica: string;
  readonly taskId: string;
}

/**
 * The task ids agents see: the task's home, sealed (`Sealer`), bound to the caller, the virtual
 * server and the environment: another caller's handle does not open, and gets the same answer as
 * a made-up one.
 */
export class TaskHandles {
  readonly #sealer: Sealer;

  constructor(secret: Uint8Array) {
    this.#sealer = new Sealer(secret, "manifold task handle v1", "mt1.");
  }

  seal(home: TaskHome, binding: string): string {
    return this.#sealer.seal(JSON.stringify({ u: home.upstream, r: home.replica, t: home.taskId }), binding);
  }

  /** The task's home, or undefined when the handle is not one this caller holds here. */
  open(handle: unknown, binding: string): TaskHome | undefined {
    const text = this.#sealer.open(handle, binding);
    if (text === undefined) return undefined;
    try {
      const { u, r, t } = JSON.parse(text) as { u?: unknown; r?: unknown; t?: unknown };
      return typeof u === "string" && typeof r === "string" && typeof t === "string" ? { upstream: u, replica: r, taskId: t } : undefined;
    } catch {
      return undefined;
    }
  }
}
