export type CircuitState = "closed" | "open" | "half-open";

/**
 * Consecutive-failure circuit breaker, pure (time is passed in). After `threshold` failures
 * in a row it opens for `cooldownMs`; then one probe is let through (half-open), whose
 * outcome closes or re-opens it.
 */
export class CircuitBreaker {
  #state: CircuitState = "closed";
  #failures = 0;
  #openedAt = 0;
  #probing = false;
  #lastReason: string | undefined;

  constructor(
    readonly threshold: number,
    readonly cooldownMs: number,
  ) {}

  get state(): CircuitState {
    return this.#state;
  }
  get failures(): number {
    return this.#failures;
  }
  get lastReason(): string | undefined {
    return this.#lastReason;
  }

  /** Whether a call may go to the upstream now; moves open → half-open when the cooldown has passed. */
  allow(now: number): boolean {
    if (this.#state === "closed") return true;
    if (this.#state === "open") {
      if (now - this.#openedAt < this.cooldownMs) return false;
      this.#state = "half-open";
      this.#probing = false;
    }
    if (this.#probing) return false;
    this.#probing = true;
    return true;
  }

  /**
   * The probe ended without a verdict on the upstream (another bound refused it, the caller was
   * cancelled or made a mistake): the next call probes instead, so the circuit is never stuck half-open.
   */
  release(): void {
    if (this.#state === "half-open") this.#probing = false;
  }

  success(): void {
    this.#state = "closed";
    this.#failures = 0;
    this.#probing = false;
    this.#lastReason = undefined;
  }

  failure(now: number, reason: string): void {
    this.#failures++;
    this.#lastReason = reason;
    if (this.#state === "half-open" || this.#failures >= this.threshold) {
      this.#state = "open";
      this.#openedAt = now;
      this.#probing = false;
    }
  }
}
