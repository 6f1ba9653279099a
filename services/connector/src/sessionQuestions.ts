/** Question ids a session remembers with the call each came on: a replayed one is recognised while it is among the latest. */
const MAX_SEEN = 256;
/** The call a question seen on the session's GET stream came on: none (no call's upstream id is empty). */
export const NO_CALL = "";

/**
 * What shows a question on a 2025 call's resumed stream harmless (`ResumedStream`): who else
 * called on the session meanwhile, and which questions its other calls' streams carried. An
 * upstream replaying the whole session after `Last-Event-ID` can put there only questions of calls
 * that ran on the session since the call began: each either runs still or has ended since. If
 * every one of them is the call's own caller's, no other tenant is asked or told anything, unless
 * the question's id was already seen on another call's stream or on the session's GET stream (a
 * replay of it: work a call of another caller left behind asks there, after its call ended). What a call costs
 * without resumption: a counter read as it starts, two fields written as it ends.
 */
export class SessionQuestions {
  readonly #seen = new Map<string | number, string>();
  /** Calls ended on the session; the caller of the last one and its number; the last one ended by any other caller. */
  #ends = 0;
  #lastCaller: string | undefined;
  #lastEnd = 0;
  #otherEnd = 0;

  constructor(
    /** The callers of what runs on the session now (an unknown caller: `undefined`). */
    readonly running: () => Iterable<string | undefined>,
    /** Told of each question refused on a resumed stream (the call's upstream id), to log it. */
    readonly refused: (call: string) => void,
  ) {}

  /** What a call starting now reads (`harmless`'s `since`). */
  get mark(): number {
    return this.#ends;
  }

  /** A call (or request) of `caller` ended on the session. */
  ended(caller: string | undefined): void {
    const n = ++this.#ends;
    // An unknown caller is nobody's same caller, not even another unknown one's.
    if (caller === undefined || caller !== this.#lastCaller) {
      this.#otherEnd = this.#lastEnd;
      this.#lastCaller = caller;
    }
    this.#lastEnd = n;
  }

  /** A question of `id` came on the stream of call `call` (its upstream id; `NO_CALL`: the session's GET stream). */
  asked(id: string | number, call: string): void {
    if (this.#seen.has(id)) return;
    // The oldest goes first: a replay comes soon after what it repeats.
    if (this.#seen.size >= MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value!);
    this.#seen.set(id, call);
  }

  /**
   * Whether a question of `id` on the resumed stream of call `call` of `caller`, begun at `since`
   * (`mark`), can only be that caller's: every call that ran on the session since is that caller's,
   * and no other call's stream carried the id.
   */
  harmless(id: string | number, call: string, caller: string | undefined, since: number): boolean {
    if (caller === undefined) return false;
    const seenOn = this.#seen.get(id);
    if (seenOn !== undefined && seenOn !== call) return false;
    const lastOther = this.#lastCaller !== caller ? this.#lastEnd : this.#otherEnd;
    if (lastOther > since) return false;
    for (const other of this.running()) if (other !== caller) return false;
    return true;
  }
}
