import { ManifoldError } from "@manifold/contracts";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AdminRole } from "../config.js";
import { createHash, timingSafeEqual } from "node:crypto";
import type { AdminBudget } from "../adminBudget.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The admin token's name: recorded as the actor of the command the request issues. */
    adminName: string;
    /** What the token may do (`MANIFOLD_READER_TOKENS`: read only). */
    adminRole: AdminRole;
  }
  interface FastifyContextConfig {
    /** A route that changes nothing though its method is not GET (a preview): readers may use it. */
    readOnly?: boolean;
  }
}

/** Read-only tokens may use the routes that change nothing, and no other: deny unless known to be a read. */
const reads = (request: FastifyRequest) => request.method === "GET" || request.method === "HEAD" || request.routeOptions.config?.readOnly === true;

const digest = (value: string) => createHash("sha256").update(value).digest();

/**
 * Every admin route needs an admin bearer token; agents' credentials never open it. Each token's
 * requests, and those without one, are counted against `budget` before anything else is done.
 */
export function requireAdminToken(app: FastifyInstance, tokens: readonly { name: string; token: string; role: AdminRole }[], budget: AdminBudget): void {
  const expected = tokens.map(({ name, token, role }) => ({ name, role, digest: digest(token) }));
  app.decorateRequest("adminName", "");
  app.decorateRequest("adminRole", "reader");
  app.addHook("onRequest", async (request, reply) => {
    const header = request.headers.authorization;
    // The scheme is case-insensitive (RFC 9110 §11.1).
    const presented = header !== undefined && /^bearer /i.test(header) ? digest(header.slice(7)) : undefined;
    // Comparing digests keeps each comparison constant-time whatever the lengths; every token is compared.
    let match: (typeof expected)[number] | undefined;
    if (presented) for (const token of expected) if (timingSafeEqual(presented, token.digest)) match ??= token;
    if (match === undefined) {
      await budget.takeUnauthenticated();
      reply.header("WWW-Authenticate", 'Bearer realm="manifold-admin"');
      throw new ManifoldError("unauthorized", presented === undefined ? "missing admin bearer token" : "invalid admin bearer token");
    }
    // Named before the budget is taken: a refusal for the budget is counted under the admin's name.
    request.adminName = match.name;
    request.adminRole = match.role;
    await budget.take(match.name);
    if (match.role === "reader" && !reads(request)) {
      throw new ManifoldError("forbidden", `'${match.name}' is a reader: ${request.method} changes the registry, and readers may only read (MANIFOLD_READER_TOKENS)`);
    }
  });
}
