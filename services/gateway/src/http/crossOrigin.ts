import { answersCrossOrigin, crossOriginHook, type HostPolicy } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";
import { ALLOWED_METHODS } from "./mcpRoutes.js";

/** What a browser agent may send, and what its script may read besides the simple headers: the session, the revision, OAuth's challenge, when to retry. */
const RULES = { methods: ALLOWED_METHODS, exposed: "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After" };

/**
 * CORS for browser agents on the origins `GATEWAY_ALLOWED_ORIGINS` lists (`*`: any; `crossOrigin`).
 * `guardHosts` runs first and has refused every other origin (403). Without a list nothing is
 * registered: requests from the gateway's own origin need no CORS, and clients that are not
 * browsers send no `Origin`.
 */
export function answerCrossOrigin(app: FastifyInstance, policy: HostPolicy): void {
  if (answersCrossOrigin(policy)) app.addHook("onRequest", crossOriginHook(RULES));
}
