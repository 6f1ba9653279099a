import { bodyTooDeep } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

/**
 * JSON bodies as fastify parses them (prototype poisoning refused), except that an empty one is
 * no body: clients send `Content-Type: application/json` on DELETE and on body-less POSTs too.
 * A route that needs a body still says so, naming it, through its schema. Nesting is bounded.
 */
export function acceptEmptyJsonBodies(app: FastifyInstance): void {
  // The admin API takes JSON only: any other body is 415 (fastify reads text/plain as a string by default).
  app.removeContentTypeParser("text/plain");
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === "") return done(null, undefined);
    // Measured before parsing: too deep is 400 `json_too_deep`, never a stack overflow.
    const tooDeep = bodyTooDeep(text);
    return tooDeep ? done(tooDeep, undefined) : parse(request, text, done);
  });
}
