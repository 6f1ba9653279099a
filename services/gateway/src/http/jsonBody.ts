import { AgentBodyLimits, measureBody, type BodyLimits } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

declare module "fastify" {
  interface FastifyRequest {
    /** The object keys the JSON body held, measured before it was parsed (0 without one): a wide body costs its caller more (`requestBudget.ts`). */
    bodyKeys: number;
    /** The JSON body's length in characters (0 without one): a large body costs its caller more too. */
    bodyLength: number;
  }
}

/**
 * JSON bodies as the gateway accepts them: nesting and object keys are measured on the raw text
 * in one pass before anything parses or walks it (`json_too_deep`, `json_too_wide`, naming the
 * limit), an empty body is no body (a DELETE or a body-less POST with a JSON content type), and
 * the rest is fastify's own parser (prototype-poisoning keys refused).
 */
export function acceptBoundedJson(app: FastifyInstance, limits: BodyLimits = AgentBodyLimits): void {
  const parse = app.getDefaultJsonParser("error", "ignore");
  // Declared up front, so every request has the same shape (fastify's advice for hot paths).
  app.decorateRequest("bodyKeys", 0);
  app.decorateRequest("bodyLength", 0);
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    if (text.length === 0) return done(null, undefined);
    const keys = measureBody(text, limits);
    if (typeof keys !== "number") return done(keys, undefined);
    request.bodyKeys = keys;
    request.bodyLength = text.length;
    return parse(request, text, done);
  });
}
