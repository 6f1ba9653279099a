/** A caller's tasks remembered on one connection; past it, its oldest is forgotten (and answered `task_not_found`). */
const PER_CALLER = 1_000;
/** All callers' together: an attacker needs a hundred identities to push out another caller's task. */
const TOTAL = 100_000;

/**
 * Which caller's call created each task of a 2026-07-28 connection. Such an upstream keeps no
 * session, so the connection outlives its restarts, and one that numbers its tasks from 1 again
 * gives a new task the id of an old one: a handle names a task by that id on the connection, so
 * alice's old handle opened bob's new task. A task is answered only to its creator, and an id
 * created again belongs to its latest creator.
 */
export class TaskOwners {
  /** Task id → caller, oldest first. */
  readonly #owners = new Map<string, string>();
  /** Caller → its task ids, oldest first. */
  readonly #byCaller = new Map<string, string[]>();

  created(taskId: string, caller = ""): void {
    this.#forget(taskId);
    const mine = this.#byCaller.get(caller) ?? [];
    if (mine.length >= PER_CALLER) this.#forget(mine[0]!);
    if (this.#owners.size >= TOTAL) this.#forget(this.#owners.keys().next().value!);
    this.#owners.set(taskId, caller);
    mine.push(taskId);
    this.#byCaller.set(caller, mine);
  }

  /** Whether this caller's call created the task here. */
  owns(taskId: string, caller = ""): boolean {
    return this.#owners.get(taskId) === caller;
  }

  #forget(taskId: string): void {
    const caller = this.#owners.get(taskId);
    if (caller === undefined) return;
    this.#owners.delete(taskId);
    const mine = this.#byCaller.get(caller)!;
    mine.splice(mine.indexOf(taskId), 1);
    if (mine.length === 0) this.#byCaller.delete(caller);
  }
}
