import { refusal, type HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { errorEnvelope } from "../jsonRpc.js";

/** Every route but the liveness and readiness probes checks `Host` and `Origin` first. */
export function guardHosts(app: FastifyInstance, policy: HostPolicy): void {
  if (policy.hosts === "any" && policy.origins === "any") return;
  app.addHook("onRequest", (request, reply, done) => {
    const path = request.url;
    if (path === "/healthz" || path === "/readyz") return done();
    const origin = request.headers.origin;
    const refused = refusal(policy, request.headers.host, Array.isArray(origin) ? origin[0] : origin);
    if (!refused) return done();
    void reply.status(refused.httpStatus).send(errorEnvelope(refused.code, refused.message));
  });
}
