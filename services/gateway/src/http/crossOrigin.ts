import type { HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { ALLOWED_METHODS } from "./mcpRoutes.js";
/** What its script may read besides the simple headers: the session, the revision, OAuth's challenge, when to retry. */
const EXPOSED = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After";
/** How long a browser may keep a preflight's answer. */
const MAX_AGE_SECONDS = "600";
/** A list of header names (RFC 9110 tokens), as a preflight's `Access-Control-Request-Headers` carries them, bounded. */
const HEADER_NAMES = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?: *, *[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;
const MAX_REQUESTED_HEADERS = 1_024;

/**
 * CORS for browser agents on the origins `GATEWAY_ALLOWED_ORIGINS` lists (`*`: any). `guardHosts`
 * runs first and has refused every other origin (403), so an `Origin` seen here is allowed: a
 * preflight is answered 204 (the methods served, the headers asked for, never credentials: the
 * gateway takes bearer tokens, not cookies), and every other answer names the origin and exposes
 * the headers an MCP client reads. Without a list nothing is registered: requests from the
 * gateway's own origin need no CORS, and clients that are not browsers send no `Origin`.
 */
export function answerCrossOrigin(app: FastifyInstance, policy: HostPolicy): void {
  if (policy.origins !== "any" && policy.origins.size === 0) return;
  app.addHook("onRequest", (request, reply, done) => {
    const origin = request.headers.origin;
    // `null` is every sandboxed frame's and file page's origin: never one to grant.
    if (origin === undefined || origin === "null") return done();
    reply.raw.setHeader("access-control-allow-origin", origin);
    reply.raw.setHeader("vary", "Origin");
    const method = request.headers["access-control-request-method"];
    if (request.method !== "OPTIONS" || method === undefined) {
      reply.raw.setHeader("access-control-expose-headers", EXPOSED);
      return done();
    }
    const asked = request.headers["access-control-request-headers"];
    void reply
      .status(204)
      .headers({
        "access-control-allow-methods": ALLOWED_METHODS,
        "access-control-max-age": MAX_AGE_SECONDS,
        ...(asked !== undefined && asked.length <= MAX_REQUESTED_HEADERS && HEADER_NAMES.test(asked) ? { "access-control-allow-headers": asked } : {}),
      })
      .send();
  });
}
