import { ErrorCode, ManifoldError } from "@manifold/contracts";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { errorEnvelope } from "../jsonRpc.js";
import { eraOfHeaders } from "../mcpCall.js";
import { closeBeforeBody } from "./unreadBody.js";

type NotFoundOptions = Parameters<FastifyInstance["setNotFoundHandler"]>[0];

/** Failures before the MCP layer (bad JSON, oversized bodies) still answer with JSON-RPC envelopes. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ManifoldError, request, reply) => {
    const era = eraOfHeaders(request.headers);
    if (error instanceof ManifoldError) {
      const envelope = errorEnvelope(error.code, error.message, era);
      if (error.data) Object.assign(envelope.error.data, error.data);
      return reply.status(error.httpStatus).send(envelope);
    }
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return reply.status(413).send(errorEnvelope("body_too_large", `request body exceeds the limit of ${request.routeOptions.bodyLimit} bytes`, era));
    }
    if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error instanceof SyntaxError) {
      return reply.status(400).send(errorEnvelope("parse_error", `parse error: ${error.message}`, era));
    }
    if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || error.code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
      return reply.status(error.statusCode ?? 400).send(errorEnvelope("invalid_request", error.message, era));
    }
    request.log.error({ err: error, reqId: request.id }, "unhandled error");
    return reply.status(500).send(errorEnvelope("internal_error", "internal error", era));
  });
  const notFound = (request: FastifyRequest, reply: FastifyReply) =>
    closeBeforeBody(request, reply).status(404).send(errorEnvelope("not_found", `no route ${request.method} ${request.url.split("?")[0]}`, eraOfHeaders(request.headers)));
  // Answered when the headers arrive: the not-found route reads a body as any route does, and needs
  // no credentials. fastify runs every lifecycle hook given here, though its types name only two
  // (a catch-all route instead would take the 414 of an over-long path segment): edgeBodyAdmission.e2e
  // fails if that changes.
  const beforeBody = { onRequest: (request: FastifyRequest, reply: FastifyReply, _done: () => void) => void notFound(request, reply) };
  app.setNotFoundHandler(beforeBody as NotFoundOptions, notFound);
}

/** fastify's own refusals before routing (a path segment past the router's limit, a malformed URL), as envelopes. */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.code === "FST_ERR_MAX_PARAM_LENGTH") {
    return reply.status(414).send(errorEnvelope("uri_too_long", "a path segment of the URL is too long", eraOfHeaders(request.headers)));
  }
  return reply.status(400).send(errorEnvelope("invalid_request", "the URL is not valid", eraOfHeaders(request.headers)));
}

/**
 * Refusals by Node's HTTP parser, before fastify sees a request: headers past the size limit
 * (431), a request that did not arrive in time (408), anything malformed (400). The answer is
 * written on the socket, which is then closed, as Node itself does.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [code, message]: [ErrorCode, string] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? ["headers_too_large", "the request headers are too large"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? ["request_timeout", "the request did not arrive in time"]
        : ["invalid_request", "the request is not valid HTTP"];
  const status = ErrorCode[code].http;
  // No headers were parsed to tell the era by; these three codes are JSON-RPC's own (-32600) in both.
  const body = JSON.stringify(errorEnvelope(code, message, "legacy"));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}
