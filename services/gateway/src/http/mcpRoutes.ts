import { HttpHeader, ManifoldError, ResourceName, type ErrorCode } from "@manifold/contracts";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { GatewayCatalog } from "../catalog.js";
import { errorEnvelope } from "../jsonRpc.js";
import type { SessionTable } from "../sessions.js";
import { parseUpstreamHeaders } from "../upstreamHeaders.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { NatsConnection } from "@manifold/bus";
import { fastLane } from "../fastLane.js";

type McpRequest = FastifyRequest<{ Params: { virtualServer: string } }>;

const send = (reply: FastifyReply, status: number, code: ErrorCode, message: string) =>
  reply.status(status).type("application/json").send(errorEnvelope(code, message));

/**
 * `/mcp/:virtualServer`: the Streamable HTTP endpoint of each virtual server. Requests of
 * a live session go to its transport; a request without a session may only initialize.
 */
export function registerMcpRoutes(
  app: FastifyInstance,
  catalog: GatewayCatalog,
  sessions: SessionTable,
  nc: NatsConnection,
  createServer: (virtualServer: string) => Server,
): void {
  const handle = async (request: McpRequest, reply: FastifyReply) => {
    const { virtualServer } = request.params;
    try {
      parseUpstreamHeaders(request.headers[HttpHeader.upstreamHeaders], catalog.projection);
    } catch (error) {
      if (error instanceof ManifoldError) return send(reply, 400, error.code, error.message);
      throw error;
    }
    const sessionId = request.headers["mcp-session-id"];
    if (typeof sessionId === "string") {
      const session = sessions.get(sessionId, virtualServer);
      if (!session) return send(reply, 404, "session_not_found", `session '${sessionId}' does not exist or has expired`);
      if (request.method === "POST") {
        const answered = fastLane(catalog, nc, session, request, reply);
        if (answered) return answered;
      }
      reply.hijack();
      return session.transport.handleRequest(request.raw, reply.raw, request.body);
    }
    if (!ResourceName.safeParse(virtualServer).success || !catalog.has(virtualServer)) {
      return send(reply, 404, "unknown_virtual_server", `virtual server '${virtualServer}' does not exist`);
    }
    if (request.method !== "POST" || !isInitializeRequest(request.body)) {
      return send(reply, 400, "session_required", "missing Mcp-Session-Id header: only an initialize request may start a session");
    }
    const transport = await sessions.open(virtualServer, createServer(virtualServer));
    reply.hijack();
    return transport.handleRequest(request.raw, reply.raw, request.body);
  };

  app.post("/mcp/:virtualServer", handle);
  app.get("/mcp/:virtualServer", handle);
  app.delete("/mcp/:virtualServer", handle);
}
