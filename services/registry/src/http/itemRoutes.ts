import { CommandType, ManifoldError, DeselectPromptsBody, DeselectResourcesBody, ResourceUri, SelectPromptsBody, SelectResourcesBody } from "@manifold/contracts";
import type { CatalogProjection } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { CommandHandler } from "../commandHandler.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import { lookups, NameParams } from "./lookups.js";
import { commandAnswer, itemsSelectedAnswer } from "./commandAnswers.js";
import { driftDecisionAnswer } from "./driftDecision.js";
import { DriftDecisionQuery, EnvironmentQuery } from "./driftRoutes.js";

/** An exposed URI or URI template in a body (URIs do not fit in a path segment). */
const UriBody = z.strictObject({ uri: ResourceUri });

/**
 * fastify validates a body before the query string: on a route with both, a hostile
 * `?environment=` is checked first, so the refusal names it as on every other route.
 */
async function environmentFirst(req: { query: unknown }): Promise<void> {
  const parsed = EnvironmentQuery.safeParse(req.query);
  if (!parsed.success) throw new ManifoldError("invalid_request", `invalid querystring: /environment ${parsed.error.issues[0]?.message ?? "is not valid"}`);
}

/**
 * Selecting a virtual server's prompts and resources (by URI or URI template), removing them,
 * and deciding on their drift (`?environment=`: of the pins promoted there). Prompt drift is also decided by exposed name on the tools'
 * `/drift/:exposedName/accept|reject` routes (one namespace); resources are named by exposed URI here.
 */
export function registerItemRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { virtualServer: getVirtualServer } = lookups(projection);

  r.post("/v1/virtual-servers/:name/prompts", { schema: { params: NameParams, body: SelectPromptsBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.selectItems, name: req.params.name, prompts: req.body.prompts, resources: [] }, commandOptions(req));
    return withVersion(reply, result).send(itemsSelectedAnswer(getVirtualServer(req.params.name), req.body.prompts, []));
  });
  r.post("/v1/virtual-servers/:name/prompts/remove", { schema: { params: NameParams, body: DeselectPromptsBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.deselectItems, name: req.params.name, prompts: req.body.exposedNames, resources: [] }, commandOptions(req));
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name), { deselected: req.body.exposedNames }));
  });
  r.post("/v1/virtual-servers/:name/resources", { schema: { params: NameParams, body: SelectResourcesBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.selectItems, name: req.params.name, prompts: [], resources: req.body.resources }, commandOptions(req));
    return withVersion(reply, result).send(itemsSelectedAnswer(getVirtualServer(req.params.name), [], req.body.resources));
  });
  r.post("/v1/virtual-servers/:name/resources/remove", { schema: { params: NameParams, body: DeselectResourcesBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.deselectItems, name: req.params.name, prompts: [], resources: req.body.uris }, commandOptions(req));
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name), { deselected: req.body.uris }));
  });
  for (const decision of ["accept", "reject"] as const) {
    r.post(`/v1/virtual-servers/:name/resource-drift/${decision}`, { schema: { params: NameParams, querystring: DriftDecisionQuery, body: UriBody }, preValidation: environmentFirst }, async (req, reply) => {
      const type = decision === "accept" ? CommandType.acceptDrift : CommandType.rejectDrift;
      const { environment, hash } = req.query;
      const result = await execute({ type, name: req.params.name, exposedName: req.body.uri, environment, hash }, commandOptions(req));
      return withVersion(reply, result).send(driftDecisionAnswer(getVirtualServer(req.params.name), environment, req.body.uri, decision, result));
    });
  }
}
