import { ManifoldError } from "@manifold/contracts";
import type { FastifyError, FastifyInstance } from "fastify";
import { errorEnvelope } from "../jsonRpc.js";

/** Failures before the MCP layer (bad JSON, oversized bodies) still answer with JSON-RPC envelopes. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ManifoldError, request, reply) => {
    if (error instanceof ManifoldError) {
      const envelope = errorEnvelope(error.code, error.message);
      if (error.data) Object.assign(envelope.error.data, error.data);
      return reply.status(error.httpStatus).send(envelope);
    }
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.status(413).send(errorEnvelope("body_too_large", `request body exceeds the limit of ${request.routeOptions.bodyLimit} bytes`));
    }
    if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error instanceof SyntaxError) {
      return reply.status(400).send(errorEnvelope("parse_error", `parse error: ${error.message}`));
    }
    if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || error.code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
      return reply.status(error.statusCode ?? 400).send(errorEnvelope("invalid_request", error.message));
    }
    request.log.error({ err: error }, "unhandled error");
    return reply.status(500).send(errorEnvelope("internal_error", "internal error"));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send(errorEnvelope("not_found", `no route ${request.method} ${request.url.split("?")[0]}`)),
  );
}
