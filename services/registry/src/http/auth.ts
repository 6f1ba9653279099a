import { ManifoldError } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (value: string) => createHash("sha256").update(value).digest();

/** Every admin route needs the admin bearer token; agents' credentials never open it. */
export function requireAdminToken(app: FastifyInstance, token: string): void {
  const expected = digest(token);
  app.addHook("onRequest", async (request, reply) => {
    const header = request.headers.authorization;
    const presented = header?.startsWith("Bearer ") ? header.slice(7) : undefined;
    // Comparing digests keeps the comparison constant-time whatever the lengths.
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
      reply.header("WWW-Authenticate", 'Bearer realm="manifold-admin"');
      throw new ManifoldError("unauthorized", presented === undefined ? "missing admin bearer token" : "invalid admin bearer token");
    }
  });
}
