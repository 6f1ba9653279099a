import { Sealer } from "./sealer.js";

/**
 * Where a task lives: the upstream, the connector replica whose upstream session holds it, the
 * connection of that session that created it (`Connection.id`: task ids are a connection's own,
 * and a restarted upstream numbers them again), the upstream's own id; and the tool that created
 * it (its upstream name), which the caller must still be granted for the handle to open.
 */
export interface TaskHome {
  readonly upstream: string;
  readonly tool: string;
  readonly replica: string;
  readonly connection: string;
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
    this.#sealer = new Sealer(secret, "manifold task handle v2", "mt2.");
  }

  seal(home: TaskHome, binding: string): string {
    return this.#sealer.seal(JSON.stringify({ u: home.upstream, n: home.tool, r: home.replica, c: home.connection, t: home.taskId }), binding);
  }

  /** The task's home, or undefined when the handle is not one this caller holds here (one sealed before handles named the connection, `c`, included: its task's connection is unknown). */
  open(handle: unknown, binding: string): TaskHome | undefined {
    const text = this.#sealer.open(handle, binding);
    if (text === undefined) return undefined;
    try {
      const { u, n, r, c, t } = JSON.parse(text) as { u?: unknown; n?: unknown; r?: unknown; c?: unknown; t?: unknown };
      return typeof u === "string" && typeof n === "string" && typeof r === "string" && typeof c === "string" && typeof t === "string" ? { upstream: u, tool: n, replica: r, connection: c, taskId: t } : undefined;
    } catch {
      return undefined;
    }
  }
}
