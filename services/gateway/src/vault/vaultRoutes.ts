import { ManifoldError, ResourceName, retryAfterOf, withRetryHint } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { registerConnectPages } from "./connectPages.js";
import type { Authenticator } from "../auth/authenticator.js";
import { SDK_MESSAGE_COST, type RequestBudget } from "../auth/requestBudget.js";
import { errorEnvelope } from "../jsonRpc.js";
import { oauthOf } from "./delegatedCredentials.js";
import type { CatalogProjection } from "@manifold/domain";
import type { TokenVault } from "./tokenVault.js";
import type { UpstreamAuthorization } from "./upstreamAuthorization.js";

/**
 * What listing a consumer's connections costs of its budget: nats-server walks every consumer's
 * records for it (`t.*.<consumer>`, ~3-20 ms with 10,000-20,000 of them), ten times a message the
 * SDK serves. Unbudgeted, one consumer listing in a loop was served ~200 times a second and slowed
 * every tenant's vault reads on the replica's bus connection from ~0 to ~45 ms (median).
 */
const LISTING_COST = 10 * SDK_MESSAGE_COST;

/**
 * The browser's side of connecting an account (`connectPages.ts`), and the consumer's view of its
 * connections: `GET /oauth/connections` lists and `DELETE /oauth/connections/<upstream>`
 * disconnects (revoking at the authorization server). Pages and errors name no token, code,
 * state or verifier.
 */
export function registerVaultRoutes(
  app: FastifyInstance,
  deps: { projection: CatalogProjection; vault: TokenVault; authorization: UpstreamAuthorization; authenticator: Authenticator | undefined; budget: RequestBudget | undefined; publicUrl: string; flowTtlS: number; logger: Logger },
): void {
  const { projection, vault, authorization, publicUrl, logger } = deps;

  registerConnectPages(app, { projection, vault, authorization, publicUrl, flowTtlS: deps.flowTtlS, logger });

  /** Who is asking: a consumer, by the same credentials as at an MCP endpoint (the resource is this URL). */
  const consumerOf = async (request: FastifyRequest, cost: number): Promise<string> => {
    const { authenticator } = deps;
    if (!authenticator) throw new ManifoldError("forbidden", "connections belong to consumers: this gateway runs without authentication");
    const presented = request.headers.authorization;
    // Failures here spend the failed-credentials budget as at the MCP endpoints: each forged JWT is a signature checked.
    const principal = await Promise.resolve()
      .then(() => authenticator.authenticate(presented, () => `${publicUrl}/oauth/connections`, request.ip))
      .catch(async (error: unknown) => {
        await authenticator.failures?.refusePastBudget(error, presented, request.ip);
        throw error;
      });
    if (!principal.consumer) throw new ManifoldError("forbidden", "connections belong to consumers: authenticate as one");
    // The caller's own budget, as at the MCP endpoints: these routes reach the bus too.
    deps.budget?.take(principal, cost);
    return principal.consumer;
  };
  const refuse = (reply: FastifyReply, error: unknown) => {
    if (!(error instanceof ManifoldError)) throw error;
    if (error.code === "unauthorized") reply.header("WWW-Authenticate", 'Bearer realm="manifold"');
    // A bus outage says when to come back here too, as the MCP endpoints' answers do.
    const retryAfter = retryAfterOf(withRetryHint(error.code, error.data));
    if (retryAfter !== undefined) reply.header("Retry-After", retryAfter);
    // Manifold's own API, not MCP: its codes are the admin API's (2025's) whatever the caller's agent speaks.
    return reply.status(error.httpStatus).send(errorEnvelope(error.code, error.message, "legacy"));
  };

  app.get("/oauth/connections", async (request, reply) => {
    try {
      const consumer = await consumerOf(request, LISTING_COST);
      return reply.header("cache-control", "no-store").send({ connections: await vault.connections(consumer) });
    } catch (error) {
      return refuse(reply, error);
    }
  });

  app.delete("/oauth/connections/:upstream", async (request: FastifyRequest<{ Params: { upstream: string } }>, reply) => {
    try {
      const consumer = await consumerOf(request, SDK_MESSAGE_COST);
      const { upstream } = request.params;
      // Only a name an upstream can have reaches the vault's keys (a `*` or `>` is a wildcard there).
      const removed = ResourceName.safeParse(upstream).success && (await revokeConnection({ projection, vault, authorization, logger }, consumer, upstream));
      if (!removed) throw new ManifoldError("not_found", `no connection to upstream '${upstream.slice(0, 63)}'`);
      return reply.status(204).send();
    } catch (error) {
      return refuse(reply, error);
    }
  });
}

/**
 * Removes a consumer's tokens for an upstream from the vault (every replica drops them) and
 * revokes them at the authorization server. `connectedBefore`: only tokens obtained before then
 * (an admin's revocation replayed later must not end a connection made after it).
 */
export async function revokeConnection(
  deps: { projection: CatalogProjection; vault: TokenVault; authorization: UpstreamAuthorization; logger: Logger },
  consumer: string,
  upstream: string,
  connectedBefore = Number.POSITIVE_INFINITY,
): Promise<boolean> {
  const current = await deps.vault.get(consumer, upstream);
  if (!current || current.connectedAt >= connectedBefore) return false;
  const removed = await deps.vault.remove(consumer, upstream);
  if (!removed) return false;
  const delegated = oauthOf(deps.projection, upstream);
  const revoked = delegated ? await deps.authorization.revoke(upstream, delegated.url, delegated.config, removed).catch(() => false) : false;
  deps.logger.info({ upstream, consumer, revokedAtAuthorizationServer: revoked }, "upstream account disconnected");
  return true;
}
