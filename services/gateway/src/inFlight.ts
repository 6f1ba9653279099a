import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import { HeldByCaller, callerName, onClose, type Closable } from "./heldByCaller.js";

/**
 * Bytes of a caller's call answers this replica may hold unwritten (not yet taken by the kernel)
 * before its next call, or the answer of one that ends meanwhile, is refused `answers_unread`.
 * Calls in flight bound how many answers, `max_payload` how large each: one consumer's 32 calls
 * answering 4 MB, read 4 KB every 100 ms, held 122 MiB (edgeUnreadCallAnswers.e2e), and at the
 * defaults 256 such answers of 8 MB (a raised `max_payload`) could hold ~1 GiB.
 */
export const MAX_UNREAD_ANSWER_BYTES = 16 * 2 ** 20;

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
  /** Calls running per caller (`running`), and per call id: whose, and who waits for them to end (`ended`). */
  readonly #perCaller = new Map<string, number>();
  readonly #calls = new Map<string, { count: number; consumer: string | undefined; waiting?: (() => void)[] }>();
  draining = false;

  /** `perPrincipal`: `GATEWAY_MAX_CALLS_PER_PRINCIPAL`; `unreadBytes`: `MAX_UNREAD_ANSWER_BYTES` (no bound while `GATEWAY_AUTH=off`). */
  constructor(
    readonly perPrincipal = Infinity,
    readonly unreadBytes = MAX_UNREAD_ANSWER_BYTES,
  ) {}

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
      this.mustHaveRoom(principal);
      this.#count++;
      this.#held.hold(principal, calls, response, release);
    } else {
      this.#count++;
      onClose(response, release);
    }
  }

  /** The fast path writes a call's answer in one piece when it comes (`wrote`): until then the response is not read for unwritten bytes. */
  writesAtEnd(response: Closable, principal: Principal): void {
    this.#held.writesAtEnd(principal, response);
  }

  /** That one piece is written: the response counts while the kernel has yet to take some of it. */
  wrote(response: Closable, principal: Principal): void {
    this.#held.wrote(principal, response);
  }

  /**
   * Refuses (`answers_unread`) when the caller's answers held here unwritten reach
   * `MAX_UNREAD_ANSWER_BYTES`: before a call is admitted, and again as a call's answer comes, since
   * calls admitted together answer together (that answer is lost: its client was not reading).
   */
  mustHaveRoom(principal: Principal): void {
    if (this.unreadBytes === Infinity) return;
    const unwritten = this.#held.unwritten(principal);
    if (unwritten < this.unreadBytes) return;
    throw new ManifoldError(
      "answers_unread",
      `${callerName(principal)} has ${unwritten} bytes of answers not yet read on this gateway replica (at most ${this.unreadBytes}); read them before calling again`,
      { unreadBytes: unwritten, maxBytes: this.unreadBytes },
    );
  }

  /**
   * Counts one call from its bus request until the connector answers, against the same bound: a
   * 2025 call whose client closed its stream runs on (a disconnect is no cancellation), so the
   * response alone let a caller keep any number running (200 abandoned 20 s calls at once, under a
   * bound of 16). Returns the release.
   */
  running(principal: Principal, callId: string): () => void {
    const id = principal.id;
    const held = this.#perCaller.get(id) ?? 0;
    if (held >= this.perPrincipal) {
      throw new ManifoldError("too_many_calls", `${callerName(principal)} already has ${held} calls running on this gateway replica (at most ${this.perPrincipal}); wait for an answer`);
    }
    this.#perCaller.set(id, held + 1);
    // Two calls under one id (a caller's reuse) are two.
    const call = this.#calls.get(callId);
    if (call) call.count++;
    else this.#calls.set(callId, { count: 1, consumer: principal.consumer });
    return () => {
      const left = (this.#perCaller.get(id) ?? 1) - 1;
      if (left > 0) this.#perCaller.set(id, left);
      else this.#perCaller.delete(id);
      const running = this.#calls.get(callId);
      if (!running || --running.count > 0) return;
      this.#calls.delete(callId);
      for (const wake of running.waiting ?? []) wake();
    };
  }

  /** Resolves when no call under this id runs here any more; undefined when none does now. */
  ended(callId: string): Promise<void> | undefined {
    const running = this.#calls.get(callId);
    if (!running) return undefined;
    return new Promise((resolve) => (running.waiting ??= []).push(resolve));
  }

  /** The ids of the calls a consumer's callers run here (a deleted consumer's are cancelled on every connector). */
  runningOf(consumer: string): string[] {
    const ids: string[] = [];
    for (const [callId, running] of this.#calls) if (running.consumer === consumer) ids.push(callId);
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
