import { CommandType, CreateVirtualServerBody, EventType, SelectToolsBody, type NewEvent } from "@manifold/contracts";
import { decide, type CatalogProjection } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { NameParams } from "./lookups.js";

/** The selections a decision would record: exposed name, source and pinned hash. */
function selections(events: NewEvent[]) {
  const tools = events.flatMap((e) =>
    e.type === EventType.virtualServerCreated || e.type === EventType.virtualServerToolsSelected ? e.data.tools : [],
  );
  return { tools: tools.map(({ exposedName, upstream, tool, hash }) => ({ exposedName, upstream, tool, hash })) };
}

/**
 * Read-only routes a person at the console needs before they act: who they are signed in as,
 * and the names a selection would expose. The preview runs the decider itself against the
 * current catalog and appends nothing, so it names exactly what saving would (naming policy,
 * aliases, collisions and their errors), with no second copy of the naming rules.
 */
export function registerConsoleRoutes(app: FastifyInstance, projection: CatalogProjection): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get("/v1/whoami", async (req) => ({ name: req.adminName, role: req.adminRole }));
  r.post("/v1/virtual-servers/preview", { config: { readOnly: true }, schema: { body: CreateVirtualServerBody } }, async (req) =>
    selections(decide({ type: CommandType.createVirtualServer, ...req.body }, projection)),
  );
  r.post("/v1/virtual-servers/:name/tools/preview", { config: { readOnly: true }, schema: { params: NameParams, body: SelectToolsBody } }, async (req) =>
    selections(decide({ type: CommandType.selectTools, name: req.params.name, ...req.body }, projection)),
  );
}
