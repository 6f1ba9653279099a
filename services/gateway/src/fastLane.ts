import { extractFromHttp } from "@manifold/telemetry";
import { SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Access } from "@manifold/domain";
import { serveToolCall, type CallDeps } from "./callPipeline.js";
import type { JsonRpcError } from "./jsonRpc.js";
import type { Session } from "./sessions.js";

type Id = string | number;
interface Message {
  jsonrpc: "2.0";
  id?: Id;
  method: string;
  params?: Record<string, unknown>;
}

const isId = (id: unknown): id is Id => typeof id === "string" || (typeof id === "number" && Number.isInteger(id));
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const json = (reply: FastifyReply, body: string) => reply.status(200).header("content-type", "application/json").send(body);
const result = (id: Id, resultJson: string) => `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":${resultJson}}`;
const failure = (id: Id, error: JsonRpcError) =>
  JSON.stringify({ jsonrpc: "2.0", id, error: { code: error.code, message: error.message, ...(error.data ? { data: error.data } : {}) } });

/**
 * Whether the fast lane may answer: a single JSON-RPC message on a live session, from a client
 * that accepts JSON (the transport requires it to accept SSE as well) and speaks a supported
 * protocol version. Anything else goes to the SDK transport, which answers it, errors included.
 */
function eligible(request: FastifyRequest, body: unknown): body is Message {
  if (!isRecord(body) || body.jsonrpc !== "2.0" || typeof body.method !== "string") return false;
  const accept = request.headers.accept ?? "";
  if (!accept.includes("application/json") || !accept.includes("text/event-stream")) return false;
  const version = request.headers["mcp-protocol-version"];
  return version === undefined || (typeof version === "string" && SUPPORTED_PROTOCOL_VERSIONS.includes(version));
}

/**
 * The hot lane of an established session. tools/call (without a progress token: progress
 * needs the SSE stream) is one bus request whose result text is spliced into the response;
 * tools/list is cached bytes. Returns undefined when the SDK transport must handle the message
 * (everything else, including cancellations, which the route has already broadcast).
 */
export function fastLane(
  deps: CallDeps,
  session: Session,
  access: Access,
  upstreamHeaders: ReadonlyMap<string, Record<string, string>> | undefined,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply | Promise<FastifyReply> | undefined {
  const body = request.body;
  if (!eligible(request, body)) return undefined;
  const { id, method, params } = body;
  if (!isId(id) || (params !== undefined && !isRecord(params))) return undefined;

  if (method === "tools/list") {
    const view = deps.catalog.view(session.virtualServer, session.environment);
    if (!view) return undefined;
    // The cached list bytes go out as they are, between an envelope head and tail.
    const head = Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":`);
    const list = view.visible(access.denied).list;
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "application/json", "content-length": head.length + list.length + 1 });
    reply.raw.write(head);
    reply.raw.write(list);
    reply.raw.end("}");
    return reply;
  }

  if (method === "tools/call") {
    const meta = params?._meta;
    if (isRecord(meta) && meta.progressToken !== undefined) return undefined;
    const call = {
      virtualServer: session.virtualServer,
      environment: session.environment,
      principal: session.principal,
      sessionId: session.id,
      requestId: id,
      denied: access.denied,
      params: params ?? {},
      upstreamHeaders,
      parent: extractFromHttp(request.headers),
    };
    return serveToolCall(deps, call).then(
      (text) => json(reply, result(id, text)),
      (error: JsonRpcError) => json(reply, failure(id, error)),
    );
  }
  return undefined;
}
