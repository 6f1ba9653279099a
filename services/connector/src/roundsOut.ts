import { ManifoldError } from "@manifold/contracts";

/** What one caller has out: its rounds, and the bytes of the calls they hold. */
interface Held {
  rounds: number;
  bytes: number;
}

/**
 * Rounds of questions out to their agents, per caller, on this connector replica. A 2026-07-28
 * agent's request ends with its round (`input_required`), so the gateway no longer counts the
 * call among the caller's calls in flight, while the round stays held here (a subscription, a
 * timer and the call's state, its arguments included) until answered or past its budget: without a
 * bound one caller's unanswered rounds grew with its request rate times the call budget, in a
 * process every tenant's calls share. Bounded in number and in the bytes of the calls held: by
 * number alone, rounds of calls of 1 MB held ~1 MiB of heap each, 256 MiB per caller.
 */
export class RoundsOut {
  readonly #perCaller = new Map<string, Held>();

  /** `perCaller`: `CONNECTOR_MAX_ROUNDS_PER_CALLER`; `perCallerBytes`: `CONNECTOR_MAX_ROUND_BYTES_PER_CALLER`. */
  constructor(
    readonly perCaller: number,
    readonly perCallerBytes: number = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Counts one more round for `caller`, holding `bytes` (its call's bus request and latest answers); refuses it
   * (`too_many_calls`) past either bound. A caller with nothing out always gets one (a call fits
   * in one bus message). Returns the release (idempotent).
   */
  take(caller: string, bytes = 0): () => void {
    const held = this.#perCaller.get(caller) ?? { rounds: 0, bytes: 0 };
    if (held.rounds >= this.perCaller) {
      throw new ManifoldError("too_many_calls", `the caller already has ${held.rounds} rounds of questions waiting for its answers on this connector replica (at most ${this.perCaller}); answer or abandon them first`);
    }
    if (held.rounds > 0 && held.bytes + bytes > this.perCallerBytes) {
      throw new ManifoldError("too_many_calls", `the caller's ${held.rounds} rounds of questions waiting for its answers on this connector replica hold ${held.bytes} bytes of calls and answers, and this one's ${bytes} would pass the ${this.perCallerBytes} bytes allowed; answer or abandon them first`);
    }
    held.rounds++;
    held.bytes += bytes;
    this.#perCaller.set(caller, held);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held.rounds--;
      held.bytes -= bytes;
      if (held.rounds === 0) this.#perCaller.delete(caller);
    };
  }

  /** Rounds out for `caller` now. */
  of(caller: string): number {
    return this.#perCaller.get(caller)?.rounds ?? 0;
  }
}
