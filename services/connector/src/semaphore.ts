import { ManifoldError } from "@manifold/contracts";

/**
 * Bounds the calls in flight to one upstream. Excess calls wait in a bounded FIFO queue
 * for at most their remaining time budget, so a slow upstream cannot exhaust the process.
 */
export class Semaphore {
  #available: number;
  readonly #queue: { grant: () => void; timer: NodeJS.Timeout }[] = [];
  readonly #maxQueue: number;
  readonly #target: string;

  /** `target` names what is bounded in errors: `upstream 'x'`, or one of its tools. */
  constructor(limit: number, maxQueue: number, target: string) {
    this.#available = limit;
    this.#maxQueue = maxQueue;
    this.#target = target;
  }

  /** Resolves with a release function; rejects when the queue is full or the wait outlasts `timeoutMs`. */
  acquire(timeoutMs: number): Promise<() => void> | (() => void) {
    if (this.#available > 0) {
      this.#available--;
      return this.#release;
    }
    if (this.#queue.length >= this.#maxQueue) {
      throw new ManifoldError("upstream_unavailable", `${this.#target} is saturated: ${this.#maxQueue} calls already queued`);
    }
    return new Promise((resolve, reject) => {
      const entry = {
        grant: () => {
          clearTimeout(entry.timer);
          resolve(this.#release);
        },
        timer: setTimeout(() => {
          this.#queue.splice(this.#queue.indexOf(entry), 1);
          reject(new ManifoldError("upstream_timeout", `${this.#target} call waited ${timeoutMs} ms for a free slot`, { timeoutMs }));
        }, timeoutMs),
      };
      this.#queue.push(entry);
    });
  }

  readonly #release = () => {
    const next = this.#queue.shift();
    if (next) next.grant();
    else this.#available++;
  };
}
