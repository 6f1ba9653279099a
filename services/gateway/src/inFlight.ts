import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import { HeldByCaller, callerName, type Closable } from "./heldByCaller.js";

/**
 * The tool calls this replica holds, each until its response closes (answered and read by its
 * client, failed, or abandoned): a shutdown waits for them (up to a limit) before closing
 * sessions, and one caller may hold at most `perPrincipal` of them, since an answer its client has
 * not read holds memory here (one consumer's 400 calls at once were accepted).
 */
export class InFlight {
  #count = 0;
  #idle: (() => void)[] = [];
  readonly #held = new HeldByCaller();
  readonly #running = new Map<string, { consumer: string | undefined; ids: Set<{ callId: string }> }>();
  /** Calls running per call id, and who waits for them to end (`ended`). */
  readonly #byCallId = new Map<string, number>();
  readonly #ended = new Map<string, (() => void)[]>();
  draining = false;

  /** `perPrincipal`: `GATEWAY_MAX_CALLS_PER_PRINCIPAL`. */
  constructor(readonly perPrincipal = Infinity) {}

  /** Refuses new work once a drain has begun: retryable, on another replica. */
  mustAccept(): void {
    if (this.draining) throw new ManifoldError("shutting_down", "this gateway is shutting down; retry on another replica");
  }

  /** Holds the `calls` of one response until it closes; refuses them (`too_many_calls`) past the caller's bound. */
  hold(response: Closable, principal?: Principal, calls = 1): void {
    const release = this.#release;
    if (principal) {
      const held = this.#held.of(principal);
      if (held + calls > this.perPrincipal) {
        throw new ManifoldError("too_many_calls", `${callerName(principal)} already has ${held} calls in flight on this gateway replica (at most ${this.perPrincipal}); wait for an answer`);
      }
      this.#held.hold(principal, calls, response, release);
    } else response.once("close", release);
    this.#count++;
  }

  /**
   * Counts one call from its bus request until the connector answers, against the same bound: a
   * 2025 call whose client closed its stream runs on (a disconnect is no cancellation), so the
   * response alone let a caller keep any number running (200 abandoned 20 s calls at once, under a
   * bound of 16). Returns the release.
   */
  running(principal: Principal, callId: string): () => void {
    const id = principal.id;
    let calls = this.#running.get(id);
    const held = calls?.ids.size ?? 0;
    if (held >= this.perPrincipal) {
      throw new ManifoldError("too_many_calls", `${callerName(principal)} already has ${held} calls running on this gateway replica (at most ${this.perPrincipal}); wait for an answer`);
    }
    if (!calls) this.#running.set(id, (calls = { consumer: principal.consumer, ids: new Set() }));
    // An entry of its own: two calls under one id (a caller's reuse) are two.
    const entry = { callId };
    calls.ids.add(entry);
    const mine = calls;
    this.#byCallId.set(callId, (this.#byCallId.get(callId) ?? 0) + 1);
    return () => {
      mine.ids.delete(entry);
      if (mine.ids.size === 0 && this.#running.get(id) === mine) this.#running.delete(id);
      const left = (this.#byCallId.get(callId) ?? 1) - 1;
      if (left > 0) return void this.#byCallId.set(callId, left);
      this.#byCallId.delete(callId);
      const waiting = this.#ended.get(callId);
      if (waiting) {
        this.#ended.delete(callId);
        for (const wake of waiting) wake();
      }
    };
  }

  /** Resolves when no call under this id runs here any more; undefined when none does now. */
  ended(callId: string): Promise<void> | undefined {
    if (!this.#byCallId.has(callId)) return undefined;
    return new Promise((resolve) => {
      const waiting = this.#ended.get(callId);
      if (waiting) waiting.push(resolve);
      else this.#ended.set(callId, [resolve]);
    });
  }

  /** The ids of the calls a consumer's callers run here (a deleted consumer's are cancelled on every connector). */
  runningOf(consumer: string): string[] {
    const ids: string[] = [];
    for (const calls of this.#running.values()) if (calls.consumer === consumer) for (const { callId } of calls.ids) ids.push(callId);
    return ids;
  }

  /** One function for every response, not one made per call. */
  readonly #release = () => {
    if (--this.#count === 0) for (const wake of this.#idle.splice(0)) wake();
  };

  /** Stops admitting new work and resolves when none is left, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#idle.push(() => (clearTimeout(timer), resolve()));
    });
  }
}
