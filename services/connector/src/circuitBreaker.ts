export type CircuitState = "closed" | "open" | "half-open";

/**
 * Consecutive-failure circuit breaker, pure (time is passed in). After `threshold` failures
 * in a row it opens for `cooldownMs`, or for as long as the failure that opened it said the
 * upstream wants no calls (its `Retry-After`, already bounded); then one probe is let through
 * (half-open), whose outcome closes or re-opens it.
 */
export class CircuitBreaker {
  #state: CircuitState = "closed";
  #failures = 0;
  /** While open: when a probe may go. */
  #probeAt = 0;
  #probing = false;
  #lastReason: string | undefined;
  /** The open circuit waits out the upstream's own `Retry-After`, which a reconnection does not shorten. */
  #asked = false;

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
      if (now < this.#probeAt) return false;
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

  /**
   * The upstream's session was opened again (it answered `initialize` or `server/discover`): an
   * open circuit lets its probe through now instead of at the end of its cooldown. Callers' calls
   * refused while the session was away ("not connected") open it, and an upstream back after
   * 0.5 s was refused to every caller for the whole cooldown (`upstreamKilledMidCall.e2e`). Not
   * when the upstream said when to come back (`Retry-After`).
   */
  reconnected(now: number): void {
    if (this.#state === "open" && !this.#asked) this.#probeAt = Math.min(this.#probeAt, now);
  }

  success(): void {
    this.#state = "closed";
    this.#failures = 0;
    this.#probing = false;
    this.#lastReason = undefined;
  }

  /**
   * `retryAfterMs`: how long the upstream asked for no calls (a 429's or 503's `Retry-After`):
   * if this failure opens the circuit, it stays open that long instead of `cooldownMs`, neither
   * probing an upstream that said it is not ready nor waiting longer once it is.
   */
  failure(now: number, reason: string, retryAfterMs?: number): void {
    this.#failures++;
    this.#lastReason = reason;
    if (this.#state === "half-open" || this.#failures >= this.threshold) {
      this.#state = "open";
      this.#probeAt = now + (retryAfterMs ?? this.cooldownMs);
      this.#asked = retryAfterMs !== undefined;
      this.#probing = false;
    }
  }

  /** Not closed, yet waiting only for a call to probe it: its cooldown is over and no probe is under way. */
  awaitsProbe(now: number): boolean {
    return (this.#state === "open" && now >= this.#probeAt) || (this.#state === "half-open" && !this.#probing);
  }

  /** How long an open circuit still refuses calls (0 once a probe may go, or when it is not open). */
  retryInMs(now: number): number {
    return this.#state === "open" ? Math.max(this.#probeAt - now, 0) : 0;
  }
}
