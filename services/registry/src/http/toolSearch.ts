import type { CatalogProjection } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { PageReads } from "../pageReads.js";

/** The most tools one search reads: past it the answer says `complete: false`, and a longer search narrows it. */
export const MAX_SEARCHED_TOOLS = 100_000;

/**
 * Tool searches running at once, per admin and in all: each takes turns on the event loop, so these
 * say how much of it searches may hold. They were counted among the page reads (4 per admin, 16 in
 * all): four admins searching took every place, and another admin's audit pages were refused
 * `at_capacity` (5 of 20) and took p50 688 ms, 16 ms alone (`searchPageReads.int`).
 */
export const MAX_SEARCHES_PER_ADMIN = 1;
export const MAX_SEARCHES = 2;

/** A picker shows the start of a description; the whole one is on the upstream's page. */
const MAX_DESCRIPTION = 300;

/** How long one slice of a search holds the event loop before other requests' turn. */
const SLICE_MS = 4;

/**
 * Each discovered definition's lowercased search text: its upstream, its name and the start of its
 * description the picker shows (`MAX_DESCRIPTION`), made at its first search and kept while the
 * definition is (a new discovery brings new definitions; the old ones' text goes with them).
 * Lowercasing every whole description per search was most of its cost: a search finding nothing
 * among 100,000 tools of 1.6 KB took ~0.4 s of the event loop; the start alone is a quarter of the
 * text to keep and to scan.
 */
const searchTexts = new WeakMap<object, string>();
function searchText(upstream: string, definition: { name: string; description?: string | undefined }): string {
  let text = searchTexts.get(definition);
  if (text === undefined) {
    text = `${upstream} ${definition.name} ${(definition.description ?? "").slice(0, MAX_DESCRIPTION)}`.toLowerCase();
    searchTexts.set(definition, text);
  }
  return text;
}

const ToolSearchQuery = z.object({
  q: z.string().max(128).default(""),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/**
 * `GET /v1/upstream-tools?q=`: the first `limit` discovered tools whose upstream, name or the
 * start of whose description (what the picker shows) holds `q`, for a picker. Lists of upstreams
 * show counts only, so this is how a console finds a tool among thousands without reading every
 * upstream's definitions. Read in slices of `SLICE_MS`, yielding between them, and counted in a
 * pool of their own (`MAX_SEARCHES`): the slices bound how long one search holds the event loop,
 * not how many take turns on it (one admin's 64 at once over 100,000 tools put another admin's
 * commands at p50 741 ms; bounded, 141 ms: `toolSearchFlood.int`).
 */
export function registerToolSearch(app: FastifyInstance, projection: CatalogProjection): void {
  const searches = new PageReads({ perAdmin: MAX_SEARCHES_PER_ADMIN, overall: MAX_SEARCHES }, "tool searches");
  app.withTypeProvider<ZodTypeProvider>().get("/v1/upstream-tools", { schema: { querystring: ToolSearchQuery } }, async (req) => searches.run(req.adminName, () => search(projection, req.query)));
}

type Found = { upstream: string; tool: string; description: string };

async function search(projection: CatalogProjection, query: z.infer<typeof ToolSearchQuery>): Promise<{ items: Found[]; complete: boolean }> {
  const needle = query.q.trim().toLowerCase();
  const items: Found[] = [];
  let searched = 0;
  let complete = true;
  // In slices of at most SLICE_MS, so one admin's searches never hold another's commands long
  // (a search that finds nothing over 20,000 tools of 1.6 KB held the loop ~90 ms, 100,000 ~0.4 s;
  // with 8 ms slices another admin's commands took p50 98-224 ms while four searches looped, with 4 ms 47-88 ms).
  let slice = performance.now();
  search: for (const u of [...projection.upstreams()]) {
    for (const t of u.tools.values()) {
      if ((searched & 255) === 0 && performance.now() - slice > SLICE_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        slice = performance.now();
      }
      // More may match past here: the limit is reached, or the search read its most.
      if (items.length >= query.limit || searched++ >= MAX_SEARCHED_TOOLS) {
        complete = false;
        break search;
      }
      const description = t.definition.description ?? "";
      if (!needle || searchText(u.name, t.definition).includes(needle)) {
        items.push({ upstream: u.name, tool: t.definition.name, description: description.slice(0, MAX_DESCRIPTION) });
      }
    }
  }
  return { items, complete };
}
