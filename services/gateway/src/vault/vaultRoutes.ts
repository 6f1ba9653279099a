import { ManifoldError } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Authenticator } from "../auth/authenticator.js";
import { errorEnvelope } from "../jsonRpc.js";
import { oauthOf } from "./delegatedCredentials.js";
import type { CatalogProjection } from "@manifold/domain";
import type { TokenVault } from "./tokenVault.js";
import type { UpstreamAuthorization } from "./upstreamAuthorization.js";

/** The state and flow ids are 32 random bytes in base64url. */
const STATE = /^[A-Za-z0-9_-]{43}$/;

const page = (reply: FastifyReply, status: number, text: string) =>
  reply
    .status(status)
    .header("content-type", "text/html; charset=utf-8")
    .header("cache-control", "no-store")
    .header("content-security-policy", "default-src 'none'")
    .header("referrer-policy", "no-referrer")
    .send(`<!doctype html><meta charset="utf-8"><title>Manifold</title><p>${text.replace(/[<>&"]/g, "")}</p>`);

/**
 * The browser's side of connecting an account, and the consumer's view of its connections:
 * `GET /oauth/connect/<flow>` sends the user to the upstream's authorization server,
 * `GET /oauth/callback` redeems the code into the vault, `GET /oauth/connections` lists and
 * `DELETE /oauth/connections/<upstream>` disconnects (revoking at the authorization server).
 * Pages and errors name no token, code, state or verifier.
 */
export function registerVaultRoutes(
  app: FastifyInstance,
  deps: { projection: CatalogProjection; vault: TokenVault; authorization: UpstreamAuthorization; authenticator: Authenticator | undefined; publicUrl: string; logger: Logger },
): void {
  const { projection, vault, authorization, publicUrl, logger } = deps;

  app.get("/oauth/connect/:state", async (request: FastifyRequest<{ Params: { state: string } }>, reply) => {
    const { state } = request.params;
    const flow = STATE.test(state) ? await vault.peekFlow(state) : undefined;
    const delegated = flow ? oauthOf(projection, flow.upstream) : undefined;
    if (!flow || !delegated) return page(reply, 404, "This link has expired or was already used. Call the tool again for a new one.");
    const target = await authorization.authorizationUrl(flow.upstream, delegated.url, delegated.config, state, flow.verifier);
    return reply.header("cache-control", "no-store").header("referrer-policy", "no-referrer").redirect(target, 302);
  });

  app.get("/oauth/callback", async (request: FastifyRequest<{ Querystring: Record<string, string | undefined> }>, reply) => {
    const state = request.query.state;
    const flow = state && STATE.test(state) ? await vault.takeFlow(state) : undefined;
    const delegated = flow ? oauthOf(projection, flow.upstream) : undefined;
    if (!flow || !delegated || !state) return page(reply, 400, "This authorization has expired or was already completed. Call the tool again for a new link.");
    try {
      const tokens = await authorization.redeem(flow.upstream, delegated.url, delegated.config, new URL(request.url, publicUrl), state, flow.verifier);
      await vault.put(flow.consumer, flow.upstream, { ...tokens, connectedAt: Date.now() });
      logger.info({ upstream: flow.upstream, consumer: flow.consumer }, "upstream account connected");
      return page(reply, 200, `Your account at ${flow.upstream} is connected. You can close this window and retry.`);
    } catch (error) {
      logger.warn({ upstream: flow.upstream, consumer: flow.consumer, reason: error instanceof ManifoldError ? error.message : "failed" }, "upstream account not connected");
      return page(reply, 502, `Your account at ${flow.upstream} could not be connected. Call the tool again to retry.`);
    }
  });

  /** Who is asking: a consumer, by the same credentials as at an MCP endpoint (the resource is this URL). */
  const consumerOf = async (request: FastifyRequest): Promise<string> => {
    if (!deps.authenticator) throw new ManifoldError("forbidden", "connections belong to consumers: this gateway runs without authentication");
    const principal = await deps.authenticator.authenticate(request.headers.authorization, `${publicUrl}/oauth/connections`);
    if (!principal.consumer) throw new ManifoldError("forbidden", "connections belong to consumers: authenticate as one");
    return principal.consumer;
  };
  const refuse = (reply: FastifyReply, error: unknown) => {
    if (!(error instanceof ManifoldError)) throw error;
    if (error.code === "unauthorized") reply.header("WWW-Authenticate", 'Bearer realm="manifold"');
    return reply.status(error.httpStatus).send(errorEnvelope(error.code, error.message));
  };

  app.get("/oauth/connections", async (request, reply) => {
    try {
      const consumer = await consumerOf(request);
      return reply.header("cache-control", "no-store").send({ connections: await vault.connections(consumer) });
    } catch (error) {
      return refuse(reply, error);
    }
  });

  app.delete("/oauth/connections/:upstream", async (request: FastifyRequest<{ Params: { upstream: string } }>, reply) => {
    try {
      const consumer = await consumerOf(request);
      const { upstream } = request.params;
      const removed = await revokeConnection({ projection, vault, authorization, logger }, consumer, upstream);
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
