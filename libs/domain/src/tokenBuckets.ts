/** Buckets are forgotten once full again, when there are more than this many (at most once a second). */
const MAX_BUCKETS = 10_000;

/**
 * A token bucket per caller: `perSecond` units, refilled continuously, `capacity` at most (a
 * second's worth unless told). What a caller is and what a refusal says are the edge's (the
 * gateway's `RequestBudget`, the registry's `AdminBudget`); this only counts.
 */
export class TokenBuckets {
  readonly #buckets = new Map<string, { units: number; at: number }>();
  #swept = -Infinity;

  readonly capacity: number;
  readonly now: () => number;

  constructor(
    readonly perSecond: number,
    options: { capacity?: number; now?: () => number } = {},
  ) {
    this.capacity = options.capacity ?? perSecond;
    this.now = options.now ?? (() => performance.now());
  }

  /** Takes `cost` units of `caller`'s bucket if it holds them; false (nothing taken) when it does not. */
  take(caller: string, cost: number): boolean {
    const bucket = this.#refilled(caller, this.now());
    if (bucket.units < cost) return false;
    bucket.units -= cost;
    return true;
  }

  /** The units `caller`'s bucket holds now, nothing taken: a caller without one holds `capacity`. */
  units(caller: string): number {
    return this.#buckets.has(caller) ? this.#refilled(caller, this.now()).units : this.capacity;
  }

  #refilled(caller: string, now: number): { units: number; at: number } {
    let bucket = this.#buckets.get(caller);
    if (bucket) {
      bucket.units = Math.min(this.capacity, bucket.units + ((now - bucket.at) * this.perSecond) / 1000);
      bucket.at = now;
    } else {
      // A scan of every bucket, at most once a second: callers active within the second are all kept.
      if (this.#buckets.size >= MAX_BUCKETS && now - this.#swept >= 1_000) this.#forgetFull((this.#swept = now));
      this.#buckets.set(caller, (bucket = { units: this.capacity, at: now }));
    }
    return bucket;
  }

  /** A bucket full again is no different from none. */
  #forgetFull(now: number): void {
    for (const [id, bucket] of this.#buckets) if (bucket.units + ((now - bucket.at) * this.perSecond) / 1000 >= this.capacity) this.#buckets.delete(id);
  }
}
