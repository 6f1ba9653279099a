import { DEFAULT_ENVIRONMENT, ManifoldError, ResourceName, type EnvironmentPin, type SelectedPrompt, type SelectedResource, type SelectedResourceTemplate } from "@manifold/contracts";
import type { CatalogProjection, VirtualServerState } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { keyedPageOf } from "./listPage.js";
import { lookups } from "./lookups.js";
import { environmentCounts } from "./views.js";

/** Pins a page holds when the caller does not say, and the most it may ask for. */
export const DEFAULT_PIN_PAGE = 1_000;
export const MAX_PIN_PAGE = 5_000;

const PinParams = z.object({ name: ResourceName, environment: ResourceName });
/** `kind`: which pins; `after`: the exposed name (tools, prompts) or URI (template) the previous page ended at (its `next`). */
export const PinQuery = z.object({
  kind: z.enum(["tools", "prompts", "resources", "resourceTemplates"]).default("tools"),
  limit: z.coerce.number().int().min(1).max(MAX_PIN_PAGE).default(DEFAULT_PIN_PAGE),
  after: z.string().min(1).max(4096).optional(),
});

export const toolPin = (p: EnvironmentPin) => ({ exposedName: p.exposedName, upstream: p.upstream, tool: p.tool, hash: p.hash });
export const promptPin = (p: SelectedPrompt) => ({ exposedName: p.exposedName, upstream: p.upstream, prompt: p.prompt, hash: p.hash });
export const resourcePin = ([exposedUri, r]: [string, SelectedResource]) => ({ exposedUri, upstream: r.upstream, uri: r.uri, hash: r.hash });
export const templatePin = ([exposedUriTemplate, t]: [string, SelectedResourceTemplate]) => ({ exposedUriTemplate, upstream: t.upstream, uriTemplate: t.uriTemplate, hash: t.hash });

/**
 * What an environment serves of a virtual server. The default environment serves the selection;
 * one promoted before promotion covered prompts and resources serves the selection's
 * (`itemsFromSelection`).
 */
function served(vs: VirtualServerState, environment: string) {
  const items = environment === DEFAULT_ENVIRONMENT ? vs : vs.environmentItems.get(environment);
  const tools = environment === DEFAULT_ENVIRONMENT ? vs.tools : vs.environments.get(environment);
  if (!tools && !items) throw new ManifoldError("not_found", `virtual server '${vs.name}' is not served in environment '${environment}'`);
  const from = items ?? vs;
  return { tools: tools ?? new Map(), prompts: from.prompts, resources: from.resources, resourceTemplates: from.resourceTemplates, itemsFromSelection: environment !== DEFAULT_ENVIRONMENT && !items };
}

/**
 * `GET /v1/virtual-servers/:name/environments/:environment?kind=&limit=&after=`: one kind of a
 * virtual server's pins in one environment, a page at a time in key order. Its view gives each
 * environment's counts only: at the limit of 50,000 pins the view listed 7 MB of them, and every
 * drift decision answered it.
 */
export function registerEnvironmentPins(app: FastifyInstance, projection: CatalogProjection): void {
  const { virtualServer: getVirtualServer } = lookups(projection);
  app.withTypeProvider<ZodTypeProvider>().get("/v1/virtual-servers/:name/environments/:environment", { schema: { params: PinParams, querystring: PinQuery } }, async (req, reply) => {
    const vs = getVirtualServer(req.params.name);
    const { environment } = req.params;
    const pins = served(vs, environment);
    const { kind, ...page } = req.query;
    const answer = { virtualServer: vs.name, environment, kind, counts: environmentCounts(vs, environment), ...(pins.itemsFromSelection ? { itemsFromSelection: true } : {}) };
    reply.header("ETag", `"${vs.version}"`);
    switch (kind) {
      case "tools":
        return { ...answer, ...keyedPageOf(pins.tools.values(), page, toolPin, (p) => p.exposedName) };
      case "prompts":
        return { ...answer, ...keyedPageOf(pins.prompts.values(), page, promptPin, (p) => p.exposedName) };
      case "resources":
        return { ...answer, ...keyedPageOf(pins.resources.entries(), page, resourcePin, ([uri]) => uri) };
      case "resourceTemplates":
        return { ...answer, ...keyedPageOf(pins.resourceTemplates.entries(), page, templatePin, ([uri]) => uri) };
    }
  });
}
