import type { FastifyInstance } from "fastify";
import { errorEnvelope } from "../jsonRpc.js";
import { eraOfHeaders } from "../mcpCall.js";

/**
 * HTTP/1.1 pipelining is refused: Node parses every request a client writes at once before any
 * answer exists, and runs them all, so a client that pipelines calls for large answers and never
 * reads kept every answer in the gateway's memory (one consumer exhausted a gateway's heap with
 * 2 MB of requests). A request queued behind an unfinished answer on its connection (Node has not
 * given its response the socket yet) is answered 400 before anything runs, and the connection
 * closes after it. MCP clients send one request at a time per connection.
 */
export function refusePipelining(app: FastifyInstance): void {
  app.addHook("onRequest", (request, reply, done) => {
    if (reply.raw.socket !== null) return done();
    void reply
      .status(400)
      .header("connection", "close")
      .send(errorEnvelope("invalid_request", "HTTP pipelining is not served: send the next request after the previous answer, or on another connection", eraOfHeaders(request.headers)));
  });
}
