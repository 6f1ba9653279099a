/**
 * A binary heap, first item by `before`, whose items record their own index in `places[slot]`
 * (-1 when absent; one slot per heap an item can be in): an item whose key changed is put back in place, or removed, in O(log n) without
 * being searched for. (The npm heaps in common use, heap-js and @datastructures-js/priority-queue,
 * find an item to remove or re-key by a linear search: the very cost this is for.) Keys must not tie:
 * `before` orders every pair, so the first item is the same whatever order items came in. (The index
 * is an array element, not a property named per heap: a store under a varying key was a third of a
 * queued acquire/release pair's time.)
 */
export class IndexedHeap<T extends { readonly places: number[] }> {
  readonly #items: T[] = [];
  readonly #before: (a: T, b: T) => boolean;
  readonly #slot: number;

  constructor(before: (a: T, b: T) => boolean, slot: number) {
    this.#before = before;
    this.#slot = slot;
  }

  first(): T | undefined {
    return this.#items[0];
  }

  /** Adds the item, or puts it back in place after its key changed. */
  set(item: T): void {
    const at = item.places[this.#slot]!;
    if (at < 0) {
      this.#items.push(item);
      this.#up(this.#items.length - 1);
    } else if (!this.#up(at)) this.#down(at);
  }

  delete(item: T): void {
    const at = item.places[this.#slot]!;
    if (at < 0) return;
    const last = this.#items.pop()!;
    this.#place(item, -1);
    if (last === item) return;
    this.#place(last, at);
    if (!this.#up(at)) this.#down(at);
  }

  /** Whether the item at `at` moved towards the top. */
  #up(at: number): boolean {
    const item = this.#items[at]!;
    let i = at;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(item, this.#items[parent]!)) break;
      this.#place(this.#items[parent]!, i);
      i = parent;
    }
    this.#place(item, i);
    return i !== at;
  }

  #down(at: number): void {
    const items = this.#items;
    const item = items[at]!;
    let i = at;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= items.length) break;
      if (child + 1 < items.length && this.#before(items[child + 1]!, items[child]!)) child++;
      if (!this.#before(items[child]!, item)) break;
      this.#place(items[child]!, i);
      i = child;
    }
    this.#place(item, i);
  }

  #place(item: T, at: number): void {
    if (at >= 0) this.#items[at] = item;
    item.places[this.#slot] = at;
  }
}
