import { refusal, type HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

/**
 * The admin port (API and console) answers only the hosts and origins it is meant for: a page
 * whose own name was made to resolve to a registry on loopback (DNS rebinding) is refused before
 * any route, the console's files included. The probes answer any host (a kubelet names the pod's IP).
 */
export function guardAdminHosts(app: FastifyInstance, policy: HostPolicy): void {
  if (policy.hosts === "any" && policy.origins === "any") return;
  app.addHook("onRequest", async (request) => {
    if (request.url === "/healthz" || request.url === "/readyz") return;
    const origin = request.headers.origin;
    const refused = refusal(policy, request.headers.host, Array.isArray(origin) ? origin[0] : origin);
    if (refused) throw refused;
  });
}
