/** A burst of triggers becomes one discovery this long after the first. */
export const DISCOVERY_DEBOUNCE_MS = 100;
/** Discoveries that follow each other closely and still run at once: list changes an operator makes by hand. */
export const DISCOVERY_BURST = 5;
/** Past the burst the gap between discoveries doubles from this… */
export const DISCOVERY_FIRST_GAP_MS = 1_000;
/** …up to this, for as long as the triggers keep coming. */
export const DISCOVERY_MAX_GAP_MS = 5 * 60_000;

/**
 * When an upstream's lists are discovered again (on `list_changed`, a reconnect, the periodic
 * rediscovery): one discovery at a time, a burst of triggers becomes one, and while an upstream
 * keeps announcing changes the gap between discoveries doubles, up to five minutes, until it
 * has been quiet for twice the gap. Each discovery whose lists changed appends an event holding
 * the whole list to the registry's stream, which keeps every event: an upstream announcing a
 * change every 5 ms with a 700-tool list appended 7 MB a second, and a slow listing started a
 * new one every 100 ms beside those still running (29 at once).
 */
export class DiscoveryPacer {
  readonly #discover: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #closed = false;
  /** A trigger arrived while a discovery ran: one more follows it. */
  #again = false;
  #lastStart = -Infinity;
  /** A trigger that counts toward the pacing (not the periodic one) is waiting. */
  #counted = false;
  /** Discoveries in a row, each started soon after the one before. */
  #streak = 0;

  constructor(discover: () => Promise<void>) {
    this.#discover = discover;
  }

  /**
   * Asks for a discovery. A `periodic` one (the timer of `CONNECTOR_REDISCOVER_MS`) neither waits
   * for the gap nor counts toward it: were it to count, a storm's five-minute gap would never end.
   */
  trigger(periodic = false): void {
    if (this.#closed) return;
    if (!periodic) this.#counted = true;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) return;
    const wait = periodic ? DISCOVERY_DEBOUNCE_MS : Math.max(DISCOVERY_DEBOUNCE_MS, this.#gap() - (Date.now() - this.#lastStart));
    this.#timer = setTimeout(() => void this.#run(), wait);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The least time from one discovery's start to the next one's. */
  #gap(): number {
    const over = this.#streak - DISCOVERY_BURST;
    return over < 0 ? 0 : Math.min(DISCOVERY_FIRST_GAP_MS * 2 ** over, DISCOVERY_MAX_GAP_MS);
  }

  async #run(): Promise<void> {
    this.#timer = undefined;
    this.#running = true;
    if (this.#counted) {
      this.#counted = false;
      const now = Date.now();
      // Quiet for twice the gap (at least twice the first one): the upstream starts afresh.
      const quiet = now - this.#lastStart > 2 * Math.max(this.#gap(), DISCOVERY_FIRST_GAP_MS);
      this.#streak = quiet ? 0 : this.#streak + 1;
      this.#lastStart = now;
    }
    try {
      await this.#discover();
    } finally {
      this.#running = false;
      if (this.#again) {
        this.#again = false;
        this.trigger(!this.#counted);
      }
    }
  }
}
