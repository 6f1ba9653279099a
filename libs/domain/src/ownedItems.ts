/**
 * What each owner (a caller) holds, in the order each was added or last `touch`ed, with how many
 * it holds and which owner holds the most, kept as items come and go. Counting every item on each
 * admission made one caller's request cost in proportion to every other tenant's sessions, streams
 * or subscriptions (a replica's 10,000 sessions read twice an initialize); here each step is constant.
 */
export class OwnedItems<T> {
  readonly #items = new Map<string, Set<T>>();
  /** The owners holding each count, each count's in the order they reached it. */
  readonly #byCount = new Map<number, Set<string>>();
  #most = 0;

  count(owner: string): number {
    return this.#items.get(owner)?.size ?? 0;
  }

  /** The owner holding the most (of equals, the first to reach that count), and how many. */
  largest(): { owner: string; count: number } | undefined {
    const owner = this.#byCount.get(this.#most)?.values().next().value;
    return owner === undefined ? undefined : { owner, count: this.#most };
  }

  has(owner: string, item: T): boolean {
    return this.#items.get(owner)?.has(item) ?? false;
  }

  /** The owner's item added or touched least recently. */
  first(owner: string): T | undefined {
    return this.#items.get(owner)?.values().next().value;
  }

  /** The owner's items, least recently added or touched first. */
  itemsOf(owner: string): Iterable<T> {
    return this.#items.get(owner) ?? [];
  }

  add(owner: string, item: T): void {
    let items = this.#items.get(owner);
    if (!items) this.#items.set(owner, (items = new Set()));
    if (items.has(item)) return;
    items.add(item);
    this.#counted(owner, items.size - 1, items.size);
  }

  delete(owner: string, item: T): void {
    const items = this.#items.get(owner);
    if (!items?.delete(item)) return;
    if (items.size === 0) this.#items.delete(owner);
    this.#counted(owner, items.size + 1, items.size);
  }

  /** Moves the item last among its owner's: `first` is the one left alone longest. */
  touch(owner: string, item: T): void {
    const items = this.#items.get(owner);
    if (items?.delete(item)) items.add(item);
  }

  #counted(owner: string, from: number, to: number): void {
    const was = this.#byCount.get(from);
    was?.delete(owner);
    if (was?.size === 0) this.#byCount.delete(from);
    if (to > 0) {
      const now = this.#byCount.get(to);
      if (now) now.add(owner);
      else this.#byCount.set(to, new Set([owner]));
    }
    // Counts move by one: the most rises to `to`, or falls with the last owner holding it to `to`.
    if (to > this.#most) this.#most = to;
    else if (from === this.#most && !this.#byCount.has(from)) this.#most = to;
  }
}
