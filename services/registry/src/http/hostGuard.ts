import { requestRefusal, type HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

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
