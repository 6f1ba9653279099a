import { CommandType, DEFAULT_ENVIRONMENT, DriftPolicyBody, ExposedToolName, MAX_URI_LENGTH, ResourceName } from "@manifold/contracts";
import { classified, classifiedItem, driftingItems, driftingPins, type CatalogProjection, type DriftingItem, type VirtualServerState } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { CommandHandler } from "../commandHandler.js";
import type { Adopter } from "../driftReview.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import { commandAnswer } from "./commandAnswers.js";
import { driftDecisionAnswer } from "./driftDecision.js";
import { keyedPageOf, ListQuery } from "./listPage.js";
import { lookups, NameParams, ToolParams } from "./lookups.js";

/** `?environment=prod`: drift of the pins promoted there, against the upstreams bound there. */
export const EnvironmentQuery = z.object({ environment: ResourceName.default(DEFAULT_ENVIRONMENT) });
/** A page of pending tool drift: `after` the exposed name the previous page ended at, `q` part of its exposed name, upstream or tool. */
const DriftQuery = ListQuery.extend({ after: ExposedToolName.optional() }).merge(EnvironmentQuery);
/** A page of pending prompt, resource and template drift: `after` the previous page's `next` (`itemCursor`), `q` part of its key, upstream or original name. */
const ItemDriftQuery = ListQuery.extend({ after: z.string().min(1).max(MAX_URI_LENGTH + 32).optional() }).merge(EnvironmentQuery);
/** An item drift's place in its pages, by kind then key (`prompt:draft`, `resource:docs+file:///a`): keys of two kinds may be equal. */
const itemCursor = (d: DriftingItem) => `${d.kind}:${d.key}`;
/**
 * An accept or reject: the environment, and the definition reviewed (its drift's `currentHash`, or
 * `gone` for a tool the upstream no longer lists), which binds the decision to it.
 */
export const DriftDecisionQuery = EnvironmentQuery.extend({
  hash: z
    .string()
    .min(1)
    .max(128)
    .optional()
    .transform((hash) => (hash === "gone" ? null : hash)),
});

/**
 * Pending drift per virtual server and environment, with its diff and class, and the decisions on
 * it. Tool drift is paged by exposed name (`limit`, `after`, `q`; at most `MAX_PAGE_BYTES` a page):
 * all of it in one answer was 3.8 MiB for 2,000 drifting tools of 1.6 KB (`driftScale.int`). Only
 * the page's drift is classified (its diff computed). Prompts', resources' and templates' drift is paged
 * apart, by kind and key (`GET …/drift/items`): beside every page of tools it was 4.2 MiB for 2,000
 * drifting prompts of 1.6 KB, and a virtual server may select 10,000 of each.
 */
export function registerDriftRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler, adopt: Adopter): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { virtualServer: getVirtualServer, environment: getEnvironment } = lookups(projection);

  /**
   * A page of drift of the virtual server in the environment asked for (an unknown one is 404), in
   * `key` order, `q` matching part of any of `fields`; only the page is classified (`view`).
   */
  const driftPage = <T, V>(name: string, query: z.infer<typeof DriftQuery> | z.infer<typeof ItemDriftQuery>, drifting: (vs: VirtualServerState, environment: string) => Iterable<T>, view: (d: T) => V, key: (d: T) => string, fields: (d: T) => string[]) => {
    const vs = getVirtualServer(name);
    const { environment } = query;
    if (environment !== DEFAULT_ENVIRONMENT) getEnvironment(environment);
    const needle = query.q?.trim().toLowerCase();
    const matches = needle ? (d: T) => fields(d).some((s) => s.toLowerCase().includes(needle)) : undefined;
    return { policy: vs.driftPolicy, environment, ...keyedPageOf(drifting(vs, environment), query, view, key, matches) };
  };
  r.get("/v1/virtual-servers/:name/drift", { schema: { params: NameParams, querystring: DriftQuery } }, async (req) =>
    driftPage(req.params.name, req.query, (vs, env) => driftingPins(vs, projection, env), classified, (d) => d.exposedName, (d) => [d.exposedName, d.upstream, d.tool]),
  );
  // An environment promoted before promotion covered prompts and resources has none of its own: listed with the default one.
  r.get("/v1/virtual-servers/:name/drift/items", { schema: { params: NameParams, querystring: ItemDriftQuery } }, async (req) =>
    driftPage(req.params.name, req.query, (vs, env) => driftingItems(vs, projection, env), classifiedItem, itemCursor, (d) => [d.key, d.upstream, d.original]),
  );
  for (const decision of ["accept", "reject"] as const) {
    r.post(`/v1/virtual-servers/:name/drift/:exposedName/${decision}`, { schema: { params: ToolParams, querystring: DriftDecisionQuery } }, async (req, reply) => {
      const type = decision === "accept" ? CommandType.acceptDrift : CommandType.rejectDrift;
      const { name, exposedName } = req.params;
      const { environment, hash } = req.query;
      const result = await execute({ type, name, exposedName, environment, hash }, commandOptions(req));
      return withVersion(reply, result).send(driftDecisionAnswer(getVirtualServer(name), environment, exposedName, decision, result));
    });
  }
  r.put("/v1/virtual-servers/:name/drift-policy", { schema: { params: NameParams, body: DriftPolicyBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.setDriftPolicy, name: req.params.name, policy: req.body.policy }, commandOptions(req));
    if (req.body.policy === "auto-compatible") await adopt();
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name)));
  });
}
