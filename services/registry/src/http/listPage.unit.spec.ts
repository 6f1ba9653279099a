import { describe, expect, test } from "vitest";
import { ListQuery, MAX_PAGE_BYTES, pageOf } from "./listPage.js";

const named = (names: string[]) => names.map((name) => ({ name, description: `about ${name}` }));
const query = (q: Record<string, string>) => ListQuery.parse(q);

describe("pageOf", () => {
  test("pages in name order whatever the insertion order, each name once, `next` absent on the last", () => {
    const all = named(Array.from({ length: 250 }, (_, i) => `n-${String((i * 97) % 250).padStart(3, "0")}`));
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = pageOf(all, query({ limit: "40", ...(after ? { after } : {}) }), (x) => x.name);
      expect(page.total).toBe(250);
      seen.push(...page.items);
      after = page.next;
      if (!after) break;
    }
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(250);
  });

  test("filters by a part of the name or the description, and counts only the matches", () => {
    const page = pageOf(named(["alpha", "beta", "alphabet"]), query({ q: "ALPHA" }), (x) => x.name);
    expect(page).toEqual({ items: ["alpha", "alphabet"], total: 2 });
    expect(pageOf(named(["alpha", "beta"]), query({ q: "about b" }), (x) => x.name).items).toEqual(["beta"]);
  });

  test("stops at the byte bound (one item always), `next` naming where", () => {
    const big = "x".repeat(MAX_PAGE_BYTES / 2);
    const page = pageOf(named(["a", "b", "c"]), query({}), (x) => ({ name: x.name, big }));
    expect(page.items.map((i) => i.name)).toEqual(["a"]);
    expect(page.next).toBe("a");
    const huge = pageOf(named(["a", "b"]), query({}), (x) => ({ name: x.name, big: big + big + big }));
    expect(huge.items.length).toBe(1);
  });

  test("a limit past the most is refused, and the default is 100", () => {
    expect(ListQuery.safeParse({ limit: "501" }).success).toBe(false);
    expect(ListQuery.parse({}).limit).toBe(100);
  });
});
