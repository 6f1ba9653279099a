import { answersCrossOrigin, crossOriginHook, requestRefusal, type HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

/** What an admin tool's page may send, and read besides the simple headers: an object's version, when to retry, the challenge. */
const RULES = { methods: "GET, POST, PUT, PATCH, DELETE", exposed: "ETag, Retry-After, WWW-Authenticate" };

/**
 * The admin port (API and console) answers only the hosts and origins it is meant for
 * (`requestRefusal`): a page whose own name was made to resolve to a registry on loopback (DNS
 * rebinding) is refused before any route, the console's files included.
 */
export function guardAdminHosts(app: FastifyInstance, policy: HostPolicy): void {
  if (policy.hosts === "any" && policy.origins === "any") return;
  app.addHook("onRequest", async (request) => {
    const refused = requestRefusal(policy, request.url, request.headers);
    if (refused) throw refused;
  });
}

/**
 * CORS for admin tools on the origins `REGISTRY_ALLOWED_ORIGINS` lists (`crossOrigin`; the guard
 * above has refused every other origin, 403). Without a list nothing is registered: the console
 * calls its own origin, and the CLI sends none. Before, a listed origin passed the guard but could
 * not use the API: its preflight was answered 404 and no answer named it, so the browser gave the
 * page a network error (adminOrigins.e2e).
 */
export function answerAdminCrossOrigin(app: FastifyInstance, policy: HostPolicy): void {
  if (!answersCrossOrigin(policy)) return;
  app.addHook("onRequest", crossOriginHook(RULES));
  // A route for preflights to reach (the hooks above do not run for fastify's not-found answer);
  // an OPTIONS that is none is not found, as before.
  app.options("/*", async (request, reply) => reply.status(404).send({ error: { code: "not_found", message: `no route OPTIONS ${request.url.split("?")[0]}` } }));
}
