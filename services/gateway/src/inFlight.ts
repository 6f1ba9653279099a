import { ManifoldError } from "@manifold/contracts";

/** Counts calls in flight so a shutdown can wait for them (up to a limit) before closing sessions. */
export class InFlight {
  #count = 0;
  #idle: (() => void)[] = [];
  draining = false;

  /** Refuses new work once a drain has begun: retryable, on another replica. */
  mustAccept(): void {
    if (this.draining) throw new ManifoldError("shutting_down", "this gateway is shutting down; retry on another replica");
  }

  /** Counts the work of one response until it is closed (answered, failed or abandoned). */
  hold(response: { once(event: "close", listener: () => void): unknown }): void {
    this.#count++;
    response.once("close", () => {
      if (--this.#count === 0) for (const wake of this.#idle.splice(0)) wake();
    });
  }

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
