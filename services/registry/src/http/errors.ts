import { BUS_RETRY_AFTER_MS, ManifoldError, retryAfterOf } from "@manifold/contracts";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import type { Refusals } from "../refusals.js";
// Declares `request.adminName`, which a refusal is counted under.
import type {} from "./auth.js";

/**
 * The `Retry-After` of a 503 whose error names no wait: the registry's own refusals while it cannot
 * take commands (its bus away or recovering, its command queue full) clear in about a second, the
 * gateway's bus wait (`BUS_RETRY_AFTER_MS`), and HTTP clients that retry a 503 (RFC 9110 §10.2.3)
 * then wait that rather than guess.
 */
const UNAVAILABLE_RETRY_AFTER = String(BUS_RETRY_AFTER_MS / 1_000);

/**
 * Requests fastify refuses before routing (a malformed percent-encoding, a path parameter past
 * `maxParamLength`), in the same shape as every other error.
 */
export function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const tooLong = error.code === "FST_ERR_MAX_PARAM_LENGTH";
  void reply.status(tooLong ? 414 : (error.statusCode ?? 400)).send({ error: { code: tooLong ? "uri_too_long" : "invalid_request", message: error.message } });
}

/** Bad HTTP, headers past the limit or a request that did not arrive in time: answered in the error shape, then closed. */
export const clientErrors = (refusals: Refusals) =>
  function clientError(error: Error & { code?: string }, socket: Duplex): void {
    if (socket.destroyed) return;
    const [status, code] =
      error.code === "HPE_HEADER_OVERFLOW" ? [431, "headers_too_large"] : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? [408, "request_timeout"] : [400, "invalid_request"];
    refusals.answered(code, undefined);
    const body = JSON.stringify({ error: { code, message: "the request is not valid HTTP or did not arrive in time" } });
    if (socket.writable) {
      socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  };

/** The admin API's only error shape: `{ error: { code, message, data? } }` with a stable code. */
export function registerErrorHandling(app: FastifyInstance, refusals: Refusals): void {
  app.setErrorHandler((error: FastifyError | ManifoldError, request, reply) => {
    if (error instanceof ManifoldError) {
      // `adminName` is a configured token's name once one was accepted (`auth.ts`), "" or absent before.
      refusals.answered(error.code, request.adminName);
      // An MCP answer carries its error in a 200; an admin client (`manifold apply`) reads the status.
      const status = error.httpStatus >= 400 ? error.httpStatus : error.code === "payload_too_large" ? 413 : 422;
      // A bound that clears by itself (`too_many_reads`, `at_capacity`) says when to come back, as
      // the gateway's answers do; a 503 that names no wait (`bus_unavailable`) says a second.
      const retryAfter = retryAfterOf(error.data) ?? (status === 503 ? UNAVAILABLE_RETRY_AFTER : undefined);
      if (retryAfter !== undefined) void reply.header("Retry-After", retryAfter);
      return reply.status(status).send({ error: error.toJSON() });
    }
    if (hasZodFastifySchemaValidationErrors(error)) {
      const issues = error.validation.map((v) => ({ path: v.instancePath || "/", message: v.message }));
      const where = error.validationContext ?? "request";
      const message = `invalid ${where}: ${issues.map((i) => `${i.path} ${i.message}`).join("; ")}`;
      return reply.status(400).send({ error: { code: "invalid_request", message, data: { issues } } });
    }
    // fastify's JSON parser: a body that is not JSON (or holds `__proto__`) is `parse_error`, as docs/errors.md says.
    if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || (error instanceof SyntaxError && error.statusCode === 400)) {
      return reply.status(400).send({ error: { code: "parse_error", message: `the body is not valid JSON: ${error.message.slice(0, 200)}` } });
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
  const notFound = (request: FastifyRequest, reply: FastifyReply) =>
    reply.status(404).send({ error: { code: "not_found", message: `no route ${request.method} ${request.url.split("?")[0]}` } });
  app.setNotFoundHandler(notFound);
  // Answered before a body is read, and the connection closed: the not-found route parses bodies
  // like any other, and it needs no token (1 MiB each, held by anyone who sent them slowly).
  app.addHook("onRequest", async (request, reply) => {
    if (!request.is404) return;
    reply.header("connection", "close");
    return notFound(request, reply);
  });
}
