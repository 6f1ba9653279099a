import { CommandType, DriftPolicyBody } from "@manifold/contracts";
import { pendingDrift, type CatalogProjection } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { CommandHandler } from "../commandHandler.js";
import type { Adopter } from "../driftReview.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import { virtualServerView } from "./views.js";
import { lookups, NameParams, ToolParams } from "./lookups.js";

/** Pending drift per virtual server, with its diff and class, and the decisions on it. */
export function registerDriftRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler, adopt: Adopter): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { virtualServer: getVirtualServer } = lookups(projection);

  r.get("/v1/virtual-servers/:name/drift", { schema: { params: NameParams } }, async (req) => {
    const vs = getVirtualServer(req.params.name);
    return { policy: vs.driftPolicy, items: pendingDrift(vs, projection) };
  });
  for (const decision of ["accept", "reject"] as const) {
    r.post(`/v1/virtual-servers/:name/drift/:exposedName/${decision}`, { schema: { params: ToolParams } }, async (req, reply) => {
      const type = decision === "accept" ? CommandType.acceptDrift : CommandType.rejectDrift;
      const result = await execute({ type, name: req.params.name, exposedName: req.params.exposedName }, commandOptions(req));
      return withVersion(reply, result).send(virtualServerView(getVirtualServer(req.params.name)));
    });
  }
  r.put("/v1/virtual-servers/:name/drift-policy", { schema: { params: NameParams, body: DriftPolicyBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.setDriftPolicy, name: req.params.name, policy: req.body.policy }, commandOptions(req));
    if (req.body.policy === "auto-compatible") await adopt();
    return withVersion(reply, result).send(virtualServerView(getVirtualServer(req.params.name)));
  });
}
