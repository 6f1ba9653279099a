import { OwnedItems } from "@manifold/domain";

/**
 * The resource subscriptions of an upstream's shared session, held per caller. A caller may
 * subscribe to as many URIs as a selected template expands to, and the session follows a bounded
 * number (`limit`): past it, the caller holding the most lets go of its least recently subscribed,
 * so a caller only ever crowds out itself. Before, one replica-wide list of the last 10,000 let one
 * consumer's 10,400 URIs silence every other subscriber. A URI no caller holds is let go upstream.
 * A caller holds a URI while any of its holders does (a gateway's listen stream; `""`: one that never
 * lets go, a 2025 session): one stream closing leaves the URI to the caller's others.
 */
export class SubscriptionShares {
  readonly #limit: () => number;
  /** Each caller's URIs, least recently subscribed first, and the caller holding the most (before, every caller's share was read for it past the limit). */
  readonly #byCaller = new OwnedItems<string>();
  /** How many callers hold each URI. */
  readonly #holders = new Map<string, number>();
  /** Who holds each of a caller's URIs, by `<caller>\n<uri>`. */
  readonly #heldBy = new Map<string, Set<string>>();

  /** `limit`: the most URIs followed at once, asked at each subscription (it may depend on the upstream's era). */
  constructor(limit: () => number) {
    this.#limit = limit;
  }

  /** Whether any caller holds `uri`: only then are its updates passed on. */
  has(uri: string): boolean {
    return this.#holders.has(uri);
  }

  /** `caller`'s `holder` holds `uri` (again, as its newest); returns the URIs no caller holds any more, to let go of upstream. */
  hold(caller: string, uri: string, holder = ""): string[] {
    const key = `${caller}\n${uri}`;
    this.#heldBy.set(key, (this.#heldBy.get(key) ?? new Set()).add(holder));
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

  /** `caller`'s `holder` no longer holds `uri` (its subscription failed, or its stream closed); true when nobody does. */
  release(caller: string, uri: string, holder = ""): boolean {
    const held = this.#heldBy.get(`${caller}\n${uri}`);
    if (!held?.delete(holder) || held.size > 0) return false;
    return this.#drop(caller, uri) !== undefined;
  }

  /** Takes `uri` out of `caller`'s share; returns it when no caller holds it any more. */
  #drop(caller: string, uri: string): string | undefined {
    this.#byCaller.delete(caller, uri);
    this.#heldBy.delete(`${caller}\n${uri}`);
    const left = this.#holders.get(uri)! - 1;
    if (left > 0) {
      this.#holders.set(uri, left);
      return undefined;
    }
    this.#holders.delete(uri);
    return uri;
  }
}
