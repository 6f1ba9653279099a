/** A small seeded generator (mulberry32): a failing fuzz run is reproduced from its seed. */
export class Random {
  #state: number;
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** A string of `length` characters drawn from awkward sets: ASCII, controls, quotes, unicode, surrogates. */
  string(length = this.int(0, 40)): string {
    const sets = [
      "abcdefghijklmnopqrstuvwxyz0123456789-_",
      "\"\\/{}[]:,'`$%&*?<>|;=+#@!~^()",
      "\u0000\u0001\u0007\b\t\n\r\u001f\u007f",
      "éß漢字🙂\u200b\u202e\ufeff\ud800\udfff",
    ];
    let out = "";
    for (let i = 0; i < length; i++) out += this.pick([...this.pick(sets)]);
    return out;
  }
  /** Printable ASCII only: what an HTTP header value or a path segment can carry. */
  token(length = this.int(1, 30)): string {
    const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~%!$&'()*+,;=:@";
    let out = "";
    for (let i = 0; i < length; i++) out += this.pick([...chars]);
    return out;
  }
  /** A random JSON value of bounded size (built without recursion past `depth`). */
  json(depth = 3): unknown {
    const kind = this.int(0, depth > 0 ? 9 : 6);
    switch (kind) {
      case 0:
        return null;
      case 1:
        return this.chance(0.5);
      case 2:
        return this.pick([0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, Number.MIN_VALUE, this.int(-1e9, 1e9)]);
      case 3:
      case 4:
        return this.string();
      case 5:
        return this.pick(["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"]);
      case 6:
        return "";
      case 7:
        return Array.from({ length: this.int(0, 4) }, () => this.json(depth - 1));
      default: {
        const keys = ["__proto__", "constructor", "prototype", "name", "arguments", "_meta", "a", this.string(5)];
        const value: Record<string, unknown> = {};
        for (let i = this.int(0, 4); i > 0; i--) Object.defineProperty(value, this.pick(keys), { value: this.json(depth - 1), enumerable: true, configurable: true, writable: true });
        return value;
      }
    }
  }
}

/** `{"d":{"d":…}}` or `[[…]]` as text, built as text: `JSON.stringify` overflows first. */
export const deepText = (depth: number, array: boolean) => (array ? "[".repeat(depth) + "]".repeat(depth) : '{"d":'.repeat(depth) + "1" + "}".repeat(depth));
