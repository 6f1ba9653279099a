import { requestRefusal, type HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { errorEnvelope } from "../jsonRpc.js";
import { eraOfHeaders } from "../mcpCall.js";

/** Every route but the probes checks `Host` and `Origin` first (`requestRefusal`), answered as JSON-RPC. */
export function guardHosts(app: FastifyInstance, policy: HostPolicy): void {
  if (policy.hosts === "any" && policy.origins === "any") return;
  app.addHook("onRequest", (request, reply, done) => {
    const refused = requestRefusal(policy, request.url, request.headers);
    if (!refused) return done();
    void reply.status(refused.httpStatus).send(errorEnvelope(refused.code, refused.message, eraOfHeaders(request.headers)));
  });
}
