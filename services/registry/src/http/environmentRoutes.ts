import { CommandType, DEFAULT_ENVIRONMENT, EnvironmentBody, PromoteBody } from "@manifold/contracts";
import type { CatalogProjection } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { CommandHandler } from "../commandHandler.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import { commandAnswer } from "./commandAnswers.js";
import { lookups, NameParams } from "./lookups.js";
import { ListQuery, pageOf } from "./listPage.js";

const environmentView = (e: { name: string; version: number; bindings: ReadonlyMap<string, string> }) => ({ name: e.name, version: e.version, bindings: Object.fromEntries(e.bindings) });
/** The default environment, which binds nothing and is never recorded. */
const DEFAULT = { name: DEFAULT_ENVIRONMENT, version: 0, bindings: new Map<string, string>() };

/** Environments bind logical upstream names to concrete ones; promotion copies pins between them. */
export function registerEnvironmentRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { environment: getEnvironment, virtualServer: getVirtualServer } = lookups(projection);

  // A page like every list: 1,000 environments, each binding any number of names, were one answer.
  r.get("/v1/environments", { schema: { querystring: ListQuery } }, async (req) => pageOf([DEFAULT, ...projection.environments()], req.query, environmentView));
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
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name)));
  });
}
