import { AdminBodyLimits, measureBody } from "@manifold/contracts";
import type { FastifyInstance } from "fastify";

/**
 * JSON bodies as fastify parses them (prototype poisoning refused), except that an empty one is
 * no body: clients send `Content-Type: application/json` on DELETE and on body-less POSTs too.
 * A route that needs a body still says so, naming it, through its schema. Nesting and object
 * keys are bounded (a catalog's import holds more keys than an agent's request may: `adminKeys`).
 */
export function acceptEmptyJsonBodies(app: FastifyInstance): void {
  // The admin API takes JSON only: any other body is 415 (fastify reads text/plain as a string by default).
  app.removeContentTypeParser("text/plain");
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === "") return done(null, undefined);
    // Measured before parsing: too deep is 400 `json_too_deep`, never a stack overflow; too wide `json_too_wide`.
    const measured = measureBody(text, AdminBodyLimits);
    return typeof measured === "number" ? parse(request, text, done) : done(measured, undefined);
  });
}
