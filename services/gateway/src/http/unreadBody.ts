import type { FastifyReply, FastifyRequest } from "fastify";

/**
 * Marks a refusal answered before the request's body was read to close its connection when a body
 * is announced: kept alive, Node would read the rest of it (until the request timeout) only to drop
 * it, and the client would hold the connection as long as it kept sending.
 */
export function closeBeforeBody(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { headers } = request;
  if (!request.raw.complete && (headers["transfer-encoding"] !== undefined || Number(headers["content-length"]) > 0)) reply.header("connection", "close");
  return reply;
}
