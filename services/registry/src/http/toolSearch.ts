import type { CatalogProjection } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";

/** The most tools one search reads: past it the answer says `complete: false`, and a longer search narrows it. */
export const MAX_SEARCHED_TOOLS = 100_000;

/** A picker shows the start of a description; the whole one is on the upstream's page. */
const MAX_DESCRIPTION = 300;

const ToolSearchQuery = z.object({
  q: z.string().max(128).default(""),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

/**
 * `GET /v1/upstream-tools?q=`: the first `limit` discovered tools whose upstream, name or
 * description holds `q`, for a picker. Lists of upstreams show counts only, so this is how a
 * console finds a tool among thousands without reading every upstream's definitions.
 */
export function registerToolSearch(app: FastifyInstance, projection: CatalogProjection): void {
  app.withTypeProvider<ZodTypeProvider>().get("/v1/upstream-tools", { schema: { querystring: ToolSearchQuery } }, async (req) => {
    const needle = req.query.q.trim().toLowerCase();
    const items: { upstream: string; tool: string; description: string }[] = [];
    let searched = 0;
    let complete = true;
    search: for (const u of projection.upstreams()) {
      for (const t of u.tools.values()) {
        // More may match past here: the limit is reached, or the search read its most.
        if (items.length >= req.query.limit || searched++ >= MAX_SEARCHED_TOOLS) {
          complete = false;
          break search;
        }
        const description = t.definition.description ?? "";
        if (!needle || `${u.name} ${t.definition.name} ${description}`.toLowerCase().includes(needle)) {
          items.push({ upstream: u.name, tool: t.definition.name, description: description.slice(0, MAX_DESCRIPTION) });
        }
      }
    }
    return { items, complete };
  });
}
