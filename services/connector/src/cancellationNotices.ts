import type { Dispatcher } from "undici";

/**
 * `notifications/cancelled` POSTs one upstream may hold at once: a few of the direct caller's 128
 * keep-alive connections to it (`sessionPool.ts`), never all of them.
 */
const MAX_IN_FLIGHT = 8;
/** Cancellations waiting for one of those places; past it one is not sent (its request is ended all the same). */
const MAX_WAITING = 1_024;

/**
 * The 2025-era cancellations sent to one upstream, bounded. A cancelled call's own request is ended
 * at once; its `notifications/cancelled` is a POST the upstream should answer 202 at once, ended
 * after `CONNECT_TIMEOUT_MS` when it does not. Unbounded, an upstream that answered none held one
 * connection per cancelled call for that long: an agent cancelling its calls as fast as it made
 * them (each cancel freed its call's place) filled all 128, and another caller's call of the
 * upstream waited 19 s for one (`heldCancellations.e2e`). The cancellations past the bound wait in
 * order and are sent as places free; past `MAX_WAITING` they are dropped, as a 2025 upstream hears
 * of no cancellation when the request's connection merely closes.
 */
export class CancellationNotices {
  #inFlight = 0;
  readonly #waiting: (() => Promise<unknown>)[] = [];

  constructor(
    readonly maxInFlight = MAX_IN_FLIGHT,
    readonly maxWaiting = MAX_WAITING,
  ) {}

  /** Sends a cancellation with `send` now, or once a place frees; false when it is dropped. */
  send(send: () => Promise<unknown>): boolean {
    if (this.#inFlight < this.maxInFlight) {
      this.#run(send);
      return true;
    }
    if (this.#waiting.length >= this.maxWaiting) return false;
    this.#waiting.push(send);
    return true;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  #run(send: () => Promise<unknown>): void {
    this.#inFlight++;
    void Promise.resolve()
      .then(send)
      .catch(() => undefined)
      .finally(() => {
        this.#inFlight--;
        const next = this.#waiting.shift();
        if (next) this.#run(next);
      });
  }
}

/** One upstream's cancellations, shared by every session on its connections. */
const ofPool = new WeakMap<Dispatcher, CancellationNotices>();

export function cancellationNoticesOf(pool: Dispatcher): CancellationNotices {
  let notices = ofPool.get(pool);
  if (!notices) ofPool.set(pool, (notices = new CancellationNotices()));
  return notices;
}
