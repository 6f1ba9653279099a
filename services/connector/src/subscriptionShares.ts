/**
 * The resource subscriptions of an upstream's shared session, held per caller. A caller may
 * subscribe to as many URIs as a selected template expands to, and the session follows a bounded
 * number (`limit`): past it, the caller holding the most lets go of its least recently subscribed,
 * so a caller only ever crowds out itself. Before, one replica-wide list of the last 10,000 let one
 * consumer's 10,400 URIs silence every other subscriber. A URI no caller holds is let go upstream.
 */
export class SubscriptionShares {
  readonly #limit: () => number;
  /** Each caller's URIs, least recently subscribed first. */
  readonly #byCaller = new Map<string, Set<string>>();
  /** How many callers hold each URI. */
  readonly #holders = new Map<string, number>();

  /** `limit`: the most URIs followed at once, asked at each subscription (it may depend on the upstream's era). */
  constructor(limit: () => number) {
    this.#limit = limit;
  }

  /** Whether any caller holds `uri`: only then are its updates passed on. */
  has(uri: string): boolean {
    return this.#holders.has(uri);
  }

  /** `caller` holds `uri` (again, as its newest); returns the URIs no caller holds any more, to let go of upstream. */
  hold(caller: string, uri: string): string[] {
    let share = this.#byCaller.get(caller);
    if (!share) this.#byCaller.set(caller, (share = new Set()));
    if (share.delete(uri)) {
      share.add(uri);
      return [];
    }
    share.add(uri);
    this.#holders.set(uri, (this.#holders.get(uri) ?? 0) + 1);
    const released: string[] = [];
    while (this.#holders.size > this.#limit()) {
      const largest = this.#largest();
      const gone = this.#drop(largest, this.#byCaller.get(largest)!.values().next().value!);
      if (gone) released.push(gone);
    }
    return released;
  }

  /** `caller` no longer holds `uri` (its subscription failed); true when nobody does. */
  release(caller: string, uri: string): boolean {
    return this.#byCaller.get(caller)?.has(uri) ? this.#drop(caller, uri) !== undefined : false;
  }

  /** The caller holding the most URIs (the first such one). */
  #largest(): string {
    let largest: string | undefined;
    let size = 0;
    for (const [caller, share] of this.#byCaller) {
      if (share.size > size) [largest, size] = [caller, share.size];
    }
    return largest!;
  }

  /** Takes `uri` out of `caller`'s share; returns it when no caller holds it any more. */
  #drop(caller: string, uri: string): string | undefined {
    const share = this.#byCaller.get(caller)!;
    share.delete(uri);
    if (share.size === 0) this.#byCaller.delete(caller);
    const left = this.#holders.get(uri)! - 1;
    if (left > 0) {
      this.#holders.set(uri, left);
      return undefined;
    }
    this.#holders.delete(uri);
    return uri;
  }
}
