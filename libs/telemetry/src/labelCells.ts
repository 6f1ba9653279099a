/**
 * A hot metric's cells, found by label values: one map level per label name, so a lookup is a few
 * map lookups of strings V8 has hashed already, with no key string built per call (prom-client
 * joins the label values into a new string and hashes it on every `inc` and `observe`).
 */
export class LabelCells<L extends string, C> {
  /** Every cell, in the order first asked for (the order prom-client lists its series in). */
  all: C[] = [];
  readonly #names: readonly L[];
  readonly #make: (labels: Record<L, string>) => C;
  #root = new Map<string, unknown>();

  constructor(names: readonly L[], make: (labels: Record<L, string>) => C) {
    if (names.length === 0) throw new Error("hot metrics are for labelled series: an unlabelled one hashes nothing");
    this.#names = names;
    this.#make = make;
  }

  /** The cell of these label values (every label named, each a string), made on first use. */
  of(labels: Record<L, string>): C {
    const names = this.#names;
    let level = this.#root;
    const last = names.length - 1;
    for (let i = 0; i < last; i++) {
      const value = labels[names[i]!];
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (!next) level.set(value, (next = new Map()));
      level = next;
    }
    const value = labels[names[last]!];
    let cell = level.get(value) as C | undefined;
    if (cell === undefined) {
      // A copy: the caller's object may be reused or changed after the call.
      const own = {} as Record<L, string>;
      for (const name of names) own[name] = labels[name];
      level.set(value, (cell = this.#make(own)));
      this.all.push(cell);
    }
    return cell;
  }

  clear(): void {
    this.all = [];
    this.#root = new Map();
  }
}
