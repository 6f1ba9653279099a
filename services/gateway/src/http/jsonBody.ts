import { JsonLimits, bodyTooDeep } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

/**
 * JSON bodies as the gateway accepts them: nesting is measured on the raw text in one pass
 * before anything parses or walks it (`json_too_deep`, naming the limit), an empty body is
 * no body (a DELETE or a body-less POST with a JSON content type), and the rest is fastify's
 * own parser (prototype-poisoning keys refused).
 */
export function acceptBoundedJson(app: FastifyInstance, maxDepth: number = JsonLimits.requestDepth): void {
  const parse = app.getDefaultJsonParser("error", "ignore");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body as string;
    if (text.length === 0) return done(null, undefined);
    const tooDeep = bodyTooDeep(text, maxDepth);
    return tooDeep ? done(tooDeep, undefined) : parse(request, text, done);
  });
}
