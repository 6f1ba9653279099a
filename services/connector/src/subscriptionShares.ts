import { OwnedItems } from "@manifold/domain";

/**
 * The resource subscriptions of an upstream's shared session, held per caller. A caller may
 * subscribe to as many URIs as a selected template expands to, and the session follows a bounded
 * number (`limit`): past it, the caller holding the most lets go of its least recently subscribed,
 * so a caller only ever crowds out itself. Before, one replica-wide list of the last 10,000 let one
 * consumer's 10,400 URIs silence every other subscriber. A URI no caller holds is let go upstream.
 */
export class SubscriptionShares {
  readonly #limit: () => number;
  /** Each caller's URIs, least recently subscribed first, and the caller holding the most (before, every caller's share was read for it past the limit). */
  readonly #byCaller = new OwnedItems<string>();
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
    if (this.#byCaller.has(caller, uri)) {
      this.#byCaller.touch(caller, uri);
      return [];
    }
    this.#byCaller.add(caller, uri);
    this.#holders.set(uri, (this.#holders.get(uri) ?? 0) + 1);
    const released: string[] = [];
    // The caller holding the most lets go of its oldest, and goes on while it still holds as many as
    // any (a URI another caller holds makes no room); else, of equals, the first to reach that count.
    let giving: string | undefined;
    while (this.#holders.size > this.#limit()) {
      const largest = this.#byCaller.largest()!;
      if (giving === undefined || this.#byCaller.count(giving) < largest.count) giving = largest.owner;
      const gone = this.#drop(giving, this.#byCaller.first(giving)!);
      if (gone) released.push(gone);
    }
    return released;
  }

  /** `caller` no longer holds `uri` (its subscription failed); true when nobody does. */
  release(caller: string, uri: string): boolean {
    return this.#byCaller.has(caller, uri) ? this.#drop(caller, uri) !== undefined : false;
  }

  /** Takes `uri` out of `caller`'s share; returns it when no caller holds it any more. */
  #drop(caller: string, uri: string): string | undefined {
    this.#byCaller.delete(caller, uri);
    const left = this.#holders.get(uri)! - 1;
    if (left > 0) {
      this.#holders.set(uri, left);
      return undefined;
    }
    this.#holders.delete(uri);
    return uri;
  }
}
