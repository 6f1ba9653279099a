import { ResourceName, type ResolvedGrant, type SelectedPrompt, type SelectedResource, type SelectedResourceTemplate, type SelectedTool } from "@manifold/contracts";
import type { CatalogProjection, VirtualServerState } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { keyedPageOf, ListQuery } from "./listPage.js";
import { lookups } from "./lookups.js";

/** `after`: the key the previous page ended at (an exposed name, URI, grant id or alias); `q`: part of the key. */
const SelectionQuery = ListQuery.extend({ after: z.string().min(1).max(4096).optional() });

/** One list of what a virtual server holds: where it is, its entries, each entry's key and how it is shown. */
interface SelectionList<T> {
  of(vs: VirtualServerState): Iterable<T>;
  key(entry: T): string;
  view(entry: T): unknown;
}
const list = <T>(l: SelectionList<T>) => l as SelectionList<unknown>;

/**
 * What a virtual server holds, by the path under it that lists it. Tools and prompts are keyed by
 * exposed name, resources and templates by exposed URI (template), grants by id, aliases by the
 * old name; each entry as the whole view showed it, with its pinned definition.
 */
const LISTS: Record<string, SelectionList<unknown>> = {
  tools: list<SelectedTool>({ of: (vs) => vs.tools.values(), key: (t) => t.exposedName, view: (t) => t }),
  prompts: list<SelectedPrompt>({ of: (vs) => vs.prompts.values(), key: (p) => p.exposedName, view: (p) => p }),
  resources: list<[string, SelectedResource]>({ of: (vs) => vs.resources.entries(), key: ([uri]) => uri, view: ([exposedUri, r]) => ({ exposedUri, ...r }) }),
  "resource-templates": list<[string, SelectedResourceTemplate]>({ of: (vs) => vs.resourceTemplates.entries(), key: ([uri]) => uri, view: ([exposedUriTemplate, t]) => ({ exposedUriTemplate, ...t }) }),
  grants: list<ResolvedGrant>({ of: (vs) => vs.grants.values(), key: (g) => g.grantId, view: (g) => g }),
  aliases: list<[string, string]>({ of: (vs) => vs.deprecatedAliases.entries(), key: ([alias]) => alias, view: ([alias, current]) => ({ alias, current }) }),
};

/**
 * `GET /v1/virtual-servers/:name/{tools,prompts,resources,resource-templates,grants,aliases}`
 * (`limit`, `after`, `q`): what a virtual server holds, a page of at most `MAX_PAGE_BYTES` at a
 * time in key order, with `total` and `next`. Its view counts them.
 */
export function registerSelectionRoutes(app: FastifyInstance, projection: CatalogProjection): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { virtualServer: getVirtualServer } = lookups(projection);
  for (const [path, selection] of Object.entries(LISTS)) {
    r.get(`/v1/virtual-servers/:name/${path}`, { schema: { params: z.object({ name: ResourceName }), querystring: SelectionQuery } }, async (req, reply) => {
      const vs = getVirtualServer(req.params.name);
      const needle = req.query.q?.trim().toLowerCase();
      const matches = needle ? (entry: unknown) => selection.key(entry).toLowerCase().includes(needle) : undefined;
      reply.header("ETag", `"${vs.version}"`);
      return { virtualServer: vs.name, version: vs.version, ...keyedPageOf(selection.of(vs), req.query, selection.view, selection.key, matches) };
    });
  }
}
