import { AuditSettings, CommandType, ManifoldError, CreateConsumerBody, GrantBody, IdentityProviderBody, KeyId, ResourceName, shownIdentityProvider, UpdateConsumerBody } from "@manifold/contracts";
import { generateApiKey, grantsNaming, type CatalogProjection, type ConsumerState } from "@manifold/domain";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { randomBytes } from "node:crypto";
import { z } from "zod";
import type { CommandHandler } from "../commandHandler.js";
import { commandOptions, withVersion } from "./commandOptions.js";
import { lookups, NameParams } from "./lookups.js";
import { ListQuery, pageOf } from "./listPage.js";

/** Keys are listed by id only: their digests stay in the registry. */
const consumerView = (c: ConsumerState) => ({
  name: c.name,
  description: c.description,
  groups: c.groups,
  identityProviders: c.identityProviders,
  version: c.version,
  keys: [...c.keys.keys()].map((keyId) => ({ keyId })),
});

/** Consumers and their API keys, grants on virtual servers, and identity providers for JWTs. */
export function registerAccessRoutes(app: FastifyInstance, projection: CatalogProjection, execute: CommandHandler): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { consumer: getConsumer, identityProvider: getIdentityProvider } = lookups(projection);

  // Up to 100,000 of them: a page at a time, in name order.
  r.get("/v1/consumers", { schema: { querystring: ListQuery } }, async (req) => pageOf(projection.consumers(), req.query, consumerView));
  r.get("/v1/consumers/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const consumer = getConsumer(req.params.name);
    return reply.header("ETag", `"${consumer.version}"`).send(consumerView(consumer));
  });
  r.post("/v1/consumers", { schema: { body: CreateConsumerBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.createConsumer, ...req.body }, commandOptions(req));
    return withVersion(reply, result)
      .status(result.changed ? 201 : 200)
      .send(consumerView(getConsumer(req.body.name)));
  });
  r.put("/v1/consumers/:name", { schema: { params: NameParams, body: UpdateConsumerBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.updateConsumer, name: req.params.name, ...req.body }, commandOptions(req));
    return withVersion(reply, result).send(consumerView(getConsumer(req.params.name)));
  });
  /**
   * Revokes every grant that names the consumer `name`, each a command on its virtual server
   * (`whileGone`: only while no consumer holds the name; one created since keeps its grants).
   */
  const revokeGrantsOf = async (name: string, actor: string | undefined, whileGone = false) => {
    for (const { virtualServer, grantId } of grantsNaming(projection, name)) {
      if (whileGone && projection.consumer(name)) return;
      // Revoked meanwhile by someone else: nothing left to do for it.
      await execute({ type: CommandType.revokeAccess, name: virtualServer, grantId }, { actor }).catch((error: unknown) => {
        if (!(error instanceof ManifoldError && error.code === "not_found")) throw error;
      });
    }
  };
  r.delete("/v1/consumers/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const options = commandOptions(req);
    const { name } = req.params;
    // A stale If-Match changes nothing: before, the grants were revoked and then the delete was 409.
    await execute.checkVersion({ type: CommandType.deleteConsumer, name }, options);
    // A consumer created later under the name is someone else and starts with no grant (a grant
    // names its consumer by name), so the grants go first. A retry of a request already answered
    // revokes nothing first: since then the name may be another consumer's, with grants of its own.
    if (!execute.replays(options) && projection.consumer(name)) await revokeGrantsOf(name, options.actor);
    const result = await execute({ type: CommandType.deleteConsumer, name }, options);
    // Grants added during the first sweep, or left by one a failure cut short (a retry comes back
    // here), go while no consumer holds the name; none can be created while any are left.
    await revokeGrantsOf(name, options.actor, true);
    return withVersion(reply, result).status(204).send();
  });
  r.post("/v1/consumers/:name/keys", { schema: { params: NameParams } }, async (req, reply) => {
    const { key, stored } = generateApiKey();
    const result = await execute({ type: CommandType.issueKey, name: req.params.name, key: stored }, commandOptions(req));
    if (result.replayed) {
      // The key issued for this Idempotency-Key was shown once; the one generated now was never stored.
      throw new ManifoldError(
        "already_exists",
        `key '${result.createdId}' was already issued for this Idempotency-Key and is shown only once; revoke it and issue a new one if it was lost`,
        { keyId: result.createdId },
      );
    }
    // The only time the key is ever shown.
    return withVersion(reply, result).status(201).send({ keyId: stored.keyId, key });
  });
  r.delete("/v1/consumers/:name/keys/:keyId", { schema: { params: z.object({ name: ResourceName, keyId: KeyId }) } }, async (req, reply) => {
    const result = await execute({ type: CommandType.revokeKey, name: req.params.name, keyId: req.params.keyId }, commandOptions(req));
    return withVersion(reply, result).status(204).send();
  });

  // Ends a consumer's own authorization at an upstream: every gateway drops the vault tokens and revokes them at the authorization server.
  r.delete("/v1/consumers/:name/connections/:upstream", { schema: { params: z.object({ name: ResourceName, upstream: ResourceName }) } }, async (req, reply) => {
    const result = await execute({ type: CommandType.revokeConnection, name: req.params.name, upstream: req.params.upstream }, commandOptions(req));
    return withVersion(reply, result).status(204).send();
  });

  r.post("/v1/virtual-servers/:name/grants", { schema: { params: NameParams, body: GrantBody } }, async (req, reply) => {
    const grant = { ...req.body, grantId: req.body.grantId ?? randomBytes(9).toString("base64url") };
    const result = await execute({ type: CommandType.grantAccess, name: req.params.name, grant }, commandOptions(req));
    // A retry reports the grant id generated the first time; denied tools as recorded, by identity.
    const grantId = result.createdId ?? grant.grantId;
    return withVersion(reply, result)
      .status(result.changed ? 201 : 200)
      .send(projection.virtualServer(req.params.name)?.grants.get(grantId) ?? { ...grant, grantId });
  });
  r.delete(
    "/v1/virtual-servers/:name/grants/:grantId",
    { schema: { params: z.object({ name: ResourceName, grantId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/) }) } },
    async (req, reply) => {
      const result = await execute({ type: CommandType.revokeAccess, name: req.params.name, grantId: req.params.grantId }, commandOptions(req));
      return withVersion(reply, result).status(204).send();
    },
  );

  r.put("/v1/virtual-servers/:name/audit", { schema: { params: NameParams, body: AuditSettings } }, async (req, reply) => {
    const result = await execute({ type: CommandType.configureAudit, name: req.params.name, audit: req.body }, commandOptions(req));
    return withVersion(reply, result).send(req.body);
  });

  // A page like every list: 100 providers of issuer, URLs, audience and groups were not bounded but by each command's body.
  // Shown without the URL credentials a provider recorded before the checks may hold (`shownIdentityProvider`).
  r.get("/v1/identity-providers", { schema: { querystring: ListQuery } }, async (req) => pageOf(projection.identityProviders(), req.query, shownIdentityProvider));
  r.get("/v1/identity-providers/:name", { schema: { params: NameParams } }, async (req) => shownIdentityProvider(getIdentityProvider(req.params.name)));
  r.post("/v1/identity-providers", { schema: { body: IdentityProviderBody } }, async (req, reply) => {
    const result = await execute({ type: CommandType.registerIdentityProvider, ...req.body }, commandOptions(req));
    return withVersion(reply, result)
      .status(result.changed ? 201 : 200)
      .send(projection.identityProvider(req.body.name));
  });
  r.delete("/v1/identity-providers/:name", { schema: { params: NameParams } }, async (req, reply) => {
    const result = await execute({ type: CommandType.removeIdentityProvider, name: req.params.name }, commandOptions(req));
    return withVersion(reply, result).status(204).send();
  });
}
