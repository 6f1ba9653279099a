import { ManifoldError } from "@manifold/contracts";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";

/**
 * Requests fastify refuses before routing (a malformed percent-encoding, a path parameter past
 * `maxParamLength`), in the same shape as every other error.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  void reply.status(error.statusCode ?? 400).send({ error: { code: "invalid_request", message: error.message } });
}

/** The admin API's only error shape: `{ error: { code, message, data? } }` with a stable code. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ManifoldError, request, reply) => {
    if (error instanceof ManifoldError) {
      return reply.status(error.httpStatus).send({ error: error.toJSON() });
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.map((v) => ({ path: v.instancePath || "/", message: v.message }));
      const where = error.validationContext ?? "request";
      const message = `invalid ${where}: ${issues.map((i) => `${i.path} ${i.message}`).join("; ")}`;
      return reply.status(400).send({ error: { code: "invalid_request", message, data: { issues } } });
    }
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.status(413).send({ error: { code: "body_too_large", message: error.message } });
    }
    if (typeof error.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.status(error.statusCode).send({ error: { code: "invalid_request", message: error.message } });
    }
    request.log.error({ err: error }, "unhandled error");
    return reply.status(500).send({ error: { code: "internal_error", message: "internal error" } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: { code: "not_found", message: `no route ${request.method} ${request.url.split("?")[0]}` } }),
  );
}
