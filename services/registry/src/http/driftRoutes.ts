import { CommandType, DEFAULT_ENVIRONMENT, DriftPolicyBody, ExposedToolName, ResourceName } from "@manifold/contracts";
import { classified, driftingPins, pendingItemDrift, type CatalogProjection, type DriftingPin } from "@manifold/domain";
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
 * the page's drift is classified (its diff computed).
 */
export function registerDriftRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler, adopt: Adopter): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { virtualServer: getVirtualServer, environment: getEnvironment } = lookups(projection);

  r.get("/v1/virtual-servers/:name/drift", { schema: { params: NameParams, querystring: DriftQuery } }, async (req) => {
    const vs = getVirtualServer(req.params.name);
    const { environment } = req.query;
    if (environment !== DEFAULT_ENVIRONMENT) getEnvironment(environment);
    // An environment promoted before promotion covered prompts and resources has none of its own: listed with the default one.
    const promptsAndResources = pendingItemDrift(vs, projection, environment);
    const needle = req.query.q?.trim().toLowerCase();
    const matches = needle ? (d: DriftingPin) => [d.exposedName, d.upstream, d.tool].some((s) => s.toLowerCase().includes(needle)) : undefined;
    const page = keyedPageOf(driftingPins(vs, projection, environment), req.query, classified, (d) => d.exposedName, matches);
    return { policy: vs.driftPolicy, environment, ...page, promptsAndResources };
  });
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
