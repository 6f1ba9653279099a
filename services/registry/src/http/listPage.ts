import { ResourceName } from "@manifold/contracts";
import { z } from "zod";

/** Items a list page holds when the caller does not say. */
export const DEFAULT_PAGE_ITEMS = 100;
/** The most a caller may ask for in one page. */
export const MAX_PAGE_ITEMS = 500;
/**
 * The most bytes of items one page holds (at least one item, whatever its size): a page of 500
 * upstreams with long descriptions and many health replicas stops early, `next` naming where.
 */
export const MAX_PAGE_BYTES = 1024 * 1024;

/**
 * A list's query: `limit` items at most, names after `after` (the previous page's `next`), and
 * `q`, a case-insensitive part of the name (or description) to filter by.
 */
export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_ITEMS).default(DEFAULT_PAGE_ITEMS),
  after: ResourceName.optional(),
  q: z.string().max(128).optional(),
});
export type ListQuery = z.infer<typeof ListQuery>;

/** A page of a list: its items in name order, how many match in all, and where the next page starts (absent on the last). */
export interface Page<V> {
  items: V[];
  total: number;
  next?: string;
}

/**
 * The page of `all` the query asks for, in name order, each item shown by `view`. Names are
 * unique, so the last name shown is the cursor.
 */
export function pageOf<T extends { name: string; description?: string | undefined }, V>(all: Iterable<T>, query: ListQuery, view: (item: T) => V): Page<V> {
  const needle = query.q?.trim().toLowerCase();
  const matches = (item: T) => !needle || item.name.includes(needle) || (item.description ?? "").toLowerCase().includes(needle);
  return keyedPageOf(all, query, view, (item) => item.name, matches);
}

/**
 * The page of `all` after `after` in the order of `key` (unique per item), at most `limit` items
 * and `MAX_PAGE_BYTES` of them. Only the page is sorted (a sorted window of `limit + 1`), never
 * every item: 100,000 consumers are scanned once.
 */
export function keyedPageOf<T, V>(
  all: Iterable<T>,
  query: { limit: number; after?: string | undefined },
  view: (item: T) => V,
  key: (item: T) => string,
  matches: (item: T) => boolean = () => true,
): Page<V> {
  const window: { key: string; item: T }[] = [];
  let total = 0;
  for (const item of all) {
    if (!matches(item)) continue;
    total++;
    const k = key(item);
    if (query.after !== undefined && k <= query.after) continue;
    if (window.length > query.limit && k >= window[window.length - 1]!.key) continue;
    window.splice(insertionPoint(window, k), 0, { key: k, item });
    if (window.length > query.limit + 1) window.pop();
  }
  const items: V[] = [];
  let bytes = 0;
  for (const { item } of window.slice(0, query.limit)) {
    const shown = view(item);
    bytes += JSON.stringify(shown).length;
    if (items.length > 0 && bytes > MAX_PAGE_BYTES) break;
    items.push(shown);
  }
  const more = items.length < window.length;
  return { items, total, ...(more ? { next: window[items.length - 1]!.key } : {}) };
}

/** Where `key` goes in the sorted `window` (binary search). */
function insertionPoint(window: { key: string }[], key: string): number {
  let low = 0;
  let high = window.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (window[mid]!.key < key) low = mid + 1;
    else high = mid;
  }
  return low;
}
