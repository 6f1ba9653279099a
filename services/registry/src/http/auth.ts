import { ManifoldError } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { createHash, timingSafeEqual } from "node:crypto";
import type { AdminBudget } from "../adminBudget.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The admin token's name: recorded as the actor of the command the request issues. */
    adminName: string;
  }
}

const digest = (value: string) => createHash("sha256").update(value).digest();

/**
 * Every admin route needs an admin bearer token; agents' credentials never open it. Each token's
 * requests, and those without one, are counted against `budget` before anything else is done.
 */
export function requireAdminToken(app: FastifyInstance, tokens: readonly { name: string; token: string }[], budget: AdminBudget): void {
  const expected = tokens.map(({ name, token }) => ({ name, digest: digest(token) }));
  app.decorateRequest("adminName", "");
  app.addHook("onRequest", async (request, reply) => {
    const header = request.headers.authorization;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    const presented = header !== undefined && /^bearer /i.test(header) ? digest(header.slice(7)) : undefined;
    // Comparing digests keeps each comparison constant-time whatever the lengths; every token is compared.
    let match: string | undefined;
    if (presented) for (const token of expected) if (timingSafeEqual(presented, token.digest)) match ??= token.name;
    if (match === undefined) {
      await budget.takeUnauthenticated();
      reply.header("WWW-Authenticate", 'Bearer realm="manifold-admin"');
      throw new ManifoldError("unauthorized", presented === undefined ? "missing admin bearer token" : "invalid admin bearer token");
    }
    // Named before the budget is taken: a refusal for the budget is counted under the admin's name.
    request.adminName = match;
    await budget.take(match);
  });
}
