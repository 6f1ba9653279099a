/**
 * A bounded cache shared by tenants, where one tenant's churn costs only itself. Each owner (a
 * principal) holds at most a sixteenth of the entries: past that its own oldest entry is
 * forgotten, so one caller minting valid tokens (a JWT per request) churns only its own. When the
 * whole cache is full its oldest entry goes, never the lot. The gateway's caches used to be cleared
 * whole when full: one caller with 10,000 fresh tokens made every tenant's next request pay a full
 * verification again (verified tokens), or a new token exchange (exchanged upstream tokens).
 */
export class FairCache<V> {
  readonly #entries = new Map<string, { owner: string; value: V }>();
  /** Each owner's keys, oldest first. */
  readonly #keysOf = new Map<string, string[]>();
  readonly #limit: number;
  readonly #share: number;

  constructor(limit: number) {
    this.#limit = limit;
    this.#share = Math.max(1, Math.floor(limit / 16));
  }

  get(key: string): V | undefined {
    return this.#entries.get(key)?.value;
  }

  remember(key: string, owner: string, value: V): void {
    this.#forget(key);
    const own = this.#keysOf.get(owner);
    if (own && own.length >= this.#share) this.#forget(own[0]!);
    else if (this.#entries.size >= this.#limit) this.#forget(this.#entries.keys().next().value!);
    this.#entries.set(key, { owner, value });
    const keys = this.#keysOf.get(owner);
    if (keys) keys.push(key);
    else this.#keysOf.set(owner, [key]);
  }

  clear(): void {
    this.#entries.clear();
    this.#keysOf.clear();
  }

  get size(): number {
    return this.#entries.size;
  }

  #forget(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    const keys = this.#keysOf.get(entry.owner)!;
    keys.splice(keys.indexOf(key), 1);
    if (keys.length === 0) this.#keysOf.delete(entry.owner);
  }
}
