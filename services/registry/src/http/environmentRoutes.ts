import { CommandType, DEFAULT_ENVIRONMENT, EnvironmentBody, PromoteBody } from "@manifold/contracts";
import type { CatalogProjection, EnvironmentState } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { CommandHandler } from "../commandHandler.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import { virtualServerView } from "./views.js";
import { lookups, NameParams } from "./lookups.js";

const environmentView = (e: EnvironmentState) => ({ name: e.name, version: e.version, bindings: Object.fromEntries(e.bindings) });

/** Environments bind logical upstream names to concrete ones; promotion copies pins between them. */
export function registerEnvironmentRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { environment: getEnvironment, virtualServer: getVirtualServer } = lookups(projection);

  r.get("/v1/environments", async () => ({
    items: [{ name: DEFAULT_ENVIRONMENT, version: 0, bindings: {} }, ...[...projection.environments()].map(environmentView)],
  }));
  r.get("/v1/environments/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const environment = getEnvironment(req.params.name);
    return reply.header("ETag", `"${environment.version}"`).send(environmentView(environment));
  });
  r.put("/v1/environments/:name", { schema: { params: NameParams, body: EnvironmentBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.setEnvironment, name: req.params.name, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(environmentView(getEnvironment(req.params.name)));
  });
  r.delete("/v1/environments/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const result = await execute({ type: CommandType.deleteEnvironment, name: req.params.name }, commandOptions(req));
    return withVersion(reply, result).status(204).send();
  });
  r.post("/v1/virtual-servers/:name/promote", { schema: { params: NameParams, body: PromoteBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.promote, name: req.params.name, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(virtualServerView(getVirtualServer(req.params.name)));
  });
}
