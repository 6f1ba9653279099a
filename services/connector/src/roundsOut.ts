import { ManifoldError } from "@manifold/contracts";

/**
 * Rounds of questions out to their agents, per caller, on this connector replica. A 2026-07-28
 * agent's request ends with its round (`input_required`), so the gateway no longer counts the
 * call among the caller's calls in flight, while the round stays held here (a subscription, a
 * timer and the call's state) until answered or past its budget: without a bound one caller's
 * unanswered rounds grew with its request rate times the call budget, in a process every
 * tenant's calls share.
 */
export class RoundsOut {
  readonly #perCaller = new Map<string, number>();

  /** `perCaller`: `CONNECTOR_MAX_ROUNDS_PER_CALLER`. */
  constructor(readonly perCaller: number) {}

  /** Counts one more round for `caller`; refuses it (`too_many_calls`) past the bound. Returns the release (idempotent). */
  take(caller: string): () => void {
    const out = this.#perCaller.get(caller) ?? 0;
    if (out >= this.perCaller) {
      throw new ManifoldError("too_many_calls", `the caller already has ${out} rounds of questions waiting for its answers on this connector replica (at most ${this.perCaller}); answer or abandon them first`);
    }
    this.#perCaller.set(caller, out + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#perCaller.get(caller) ?? 1) - 1;
      if (left > 0) this.#perCaller.set(caller, left);
      else this.#perCaller.delete(caller);
    };
  }

  /** Rounds out for `caller` now. */
  of(caller: string): number {
    return this.#perCaller.get(caller) ?? 0;
  }
}
