import {
  CommandType,
  credentialRefIssues,
  ManifoldError,
  stdioIssues,
  type CredentialPolicy,
  type StdioPolicy,
  type UpstreamTransport,
  CreateVirtualServerBody,
  DescribeToolBody,
  DeselectToolsBody,
  InteractionsBody,
  RegisterUpstreamBody,
  RenameToolBody,
  SelectToolsBody,
  UpdateUpstreamBody,
  UpdateVirtualServerBody,
} from "@manifold/contracts";
import type { CatalogProjection, HealthBoard, UpstreamState } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import type { CommandHandler } from "../commandHandler.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import type { Discovery } from "../discovery.js";
import { upstreamSummary, upstreamView, virtualServerSummary, virtualServerView } from "./views.js";
import { commandAnswer, createdAnswer, toolAnswer, toolsSelectedAnswer } from "./commandAnswers.js";
import { ListQuery, pageOf } from "./listPage.js";
import { lookups, NameParams, ToolParams } from "./lookups.js";

/** Upstreams, virtual servers and their selections. */
export function registerRoutes(
  app: FastifyInstance,
  projection: CatalogProjection,
  health: HealthBoard,
  execute: CommandHandler,
  discover: Discovery,
  policies: { credentials: CredentialPolicy; stdio: StdioPolicy },
): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  /** A reference or a stdio command outside the operator's policy is refused before anything is recorded (the connector refuses it too). */
  const checkPolicies = (transport: UpstreamTransport) => {
    const issues = [...credentialRefIssues(transport, policies.credentials), ...stdioIssues(transport, policies.stdio, true)];
    if (issues.length === 0) return;
    throw new ManifoldError("invalid_request", `invalid body: ${issues.map((i) => i.message).join("; ")}`, {
      issues: issues.map((i) => ({ path: `/${i.field.replaceAll(".", "/")}`, message: i.message })),
    });
  };
  const view = (u: UpstreamState) => upstreamView(u, health.of(u.name));

  const { upstream: getUpstream, virtualServer: getVirtualServer } = lookups(projection);

  // Pages of summaries: a list never carries every discovered definition (GET /v1/upstreams/:name does).
  r.get("/v1/upstreams", { schema: { querystring: ListQuery } }, async (req) => pageOf(projection.upstreams(), req.query, (u) => upstreamSummary(u, health.of(u.name))));
  r.get("/v1/upstreams/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const u = getUpstream(req.params.name);
    return reply.header("ETag", `"${u.version}"`).send(view(u));
  });
  r.post("/v1/upstreams", { schema: { body: RegisterUpstreamBody } }, async (req, reply) => {
    checkPolicies(req.body.transport);
    const result = await execute({ type: CommandType.registerUpstream, ...req.body }, commandOptions(req));
    const discovery = await discover(req.body.name);
    const upstream = getUpstream(req.body.name);
    withVersion(reply, { version: upstream.version, changed: result.changed });
    return reply.status(result.changed ? 201 : 200).send({ ...view(upstream), discovery });
  });
  r.put("/v1/upstreams/:name", { schema: { params: NameParams, body: UpdateUpstreamBody } }, async (req, reply) => {
    checkPolicies(req.body.transport);
    const result = await execute({ type: CommandType.updateUpstream, name: req.params.name, ...req.body }, commandOptions(req));
    const discovery = result.changed ? await discover(req.params.name) : undefined;
    return withVersion(reply, { version: getUpstream(req.params.name).version, changed: result.changed }).send({
      ...view(getUpstream(req.params.name)),
      ...(discovery ? { discovery } : {}),
    });
  });
  r.post("/v1/upstreams/:name/discover", { schema: { params: NameParams } }, async (req) => {
    getUpstream(req.params.name);
    const discovery = await discover(req.params.name);
    return { ...view(getUpstream(req.params.name)), discovery };
  });
  r.delete("/v1/upstreams/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const result = await execute({ type: CommandType.removeUpstream, name: req.params.name }, commandOptions(req));
    return withVersion(reply, result).status(204).send();
  });

  r.get("/v1/virtual-servers", { schema: { querystring: ListQuery } }, async (req) => pageOf(projection.virtualServers(), req.query, virtualServerSummary));
  r.get("/v1/virtual-servers/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const vs = getVirtualServer(req.params.name);
    return reply.header("ETag", `"${vs.version}"`).send(virtualServerView(vs));
  });
  r.post("/v1/virtual-servers", { schema: { body: CreateVirtualServerBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.createVirtualServer, ...req.body }, commandOptions(req));
    return withVersion(reply, result)
      .status(result.changed ? 201 : 200)
      .send(createdAnswer(getVirtualServer(req.body.name)));
  });
  r.put("/v1/virtual-servers/:name", { schema: { params: NameParams, body: UpdateVirtualServerBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.updateVirtualServer, name: req.params.name, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name)));
  });
  // Which server-to-client requests the virtual server relays (If-Match like every update).
  r.put("/v1/virtual-servers/:name/interactions", { schema: { params: NameParams, body: InteractionsBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.setInteractions, name: req.params.name, interactions: req.body }, commandOptions(req));
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name)));
  });
  r.post("/v1/virtual-servers/:name/tools", { schema: { params: NameParams, body: SelectToolsBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.selectTools, name: req.params.name, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(toolsSelectedAnswer(getVirtualServer(req.params.name), req.body.tools));
  });
  r.post("/v1/virtual-servers/:name/tools/remove", { schema: { params: NameParams, body: DeselectToolsBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.deselectTools, name: req.params.name, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(req.params.name), { deselected: req.body.exposedNames }));
  });
  r.delete("/v1/virtual-servers/:name/tools/:exposedName", { schema: { params: ToolParams } }, async (req, reply) => {
    const { name, exposedName } = req.params;
    const result = await execute({ type: CommandType.deselectTools, name, exposedNames: [exposedName] }, commandOptions(req));
    return withVersion(reply, result).send(commandAnswer(getVirtualServer(name), { deselected: [exposedName] }));
  });
  r.patch("/v1/virtual-servers/:name/tools/:exposedName", { schema: { params: ToolParams, body: DescribeToolBody } }, async (req, reply) => {
    const { name, exposedName } = req.params;
    const result = await execute({ type: CommandType.describeTool, name, exposedName, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(toolAnswer(getVirtualServer(name), exposedName));
  });
  r.post("/v1/virtual-servers/:name/tools/:exposedName/rename", { schema: { params: ToolParams, body: RenameToolBody } }, async (req, reply) => {
    const { name, exposedName } = req.params;
    const result = await execute({ type: CommandType.renameTool, name, exposedName, ...req.body }, commandOptions(req));
    const vs = getVirtualServer(name);
    const kept = vs.deprecatedAliases.get(exposedName) === req.body.newName;
    return withVersion(reply, result).send({
      ...toolAnswer(vs, req.body.newName),
      renamed: { from: exposedName, to: req.body.newName },
      ...(kept ? { deprecatedAlias: { alias: exposedName, current: req.body.newName } } : {}),
    });
  });
  r.delete("/v1/virtual-servers/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const result = await execute({ type: CommandType.deleteVirtualServer, name: req.params.name }, commandOptions(req));
    return withVersion(reply, result).status(204).send();
  });
}
