import { HttpHeader, ManifoldError } from "@manifold/contracts";
import { extractFromHttp, markFailed, SpanKind, traced } from "@manifold/telemetry";
import { callAttributes } from "./spanAttributes.js";
import type { NatsConnection } from "@manifold/bus";
import { SUPPORTED_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Access } from "@manifold/domain";
import type { ArgumentValidator } from "./argumentValidator.js";
import { beginCall, type CallObserver } from "./callObserver.js";
import type { GatewayCatalog } from "./catalog.js";
import { unknownTool, type JsonRpcError } from "./jsonRpc.js";
import type { Session } from "./sessions.js";
import { callIdOf, requestToolCall } from "./toolCalls.js";
import { parseUpstreamHeaders } from "./upstreamHeaders.js";

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
/** What the fast lane works with, built once per gateway. */
export interface Lane {
  catalog: GatewayCatalog;
  nc: NatsConnection;
  validator: ArgumentValidator;
  observer: CallObserver;
}

export function fastLane(
  lane: Lane,
  session: Session,
  access: Access,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply | Promise<FastifyReply> | undefined {
  const body = request.body;
  if (!eligible(request, body)) return undefined;
  const { id, method, params } = body;

  if (!isId(id) || (params !== undefined && !isRecord(params))) return undefined;

  if (method === "tools/list") {
    const view = lane.catalog.view(session.virtualServer, session.environment);
    if (!view) return undefined;
    // The cached list bytes go out as they are, between an envelope head and tail.
    const head = Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":`);
    const list = view.listResult(access.denied);
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
    return call(lane, session, access, request, reply, id, params);
  }
  return undefined;
}

async function call(
  lane: Lane,
  session: Session,
  access: Access,
  request: FastifyRequest,
  reply: FastifyReply,
  id: Id,
  params: Record<string, unknown> | undefined,
): Promise<FastifyReply> {
  const { catalog, nc, validator, observer } = lane;
  const name = params?.name;
  const args = params?.arguments;
  const { facts, fail } = beginCall(session.virtualServer, session.environment, session.principal, typeof name === "string" ? name : "(none)");
  try {
    if (typeof name !== "string" || (args !== undefined && !isRecord(args))) {
      return json(reply, failure(id, fail(new ManifoldError("invalid_arguments", "invalid params: tools/call needs a string 'name' and an object 'arguments'"))));
    }
    // A denied tool is as invisible as one that was never selected.
    const route = access.denied.has(name) ? undefined : catalog.view(session.virtualServer, session.environment)?.routes.get(name);
    if (!route) return json(reply, failure(id, fail(unknownTool(session.virtualServer, name))));
    facts.tool = route.tool;
    facts.upstream = route.upstream;
    facts.argumentsValue = args;
    try {
      validator.check(route.hash, route.inputSchema, name, args);
    } catch (error) {
      return json(reply, failure(id, fail(error)));
    }
    const attributes = callAttributes(session, name, id, route.upstream, route.tool);
    return await traced(
      `tools/call ${name}`,
      SpanKind.SERVER,
      attributes,
      async (span) => {
        const context = span.spanContext();
        if (context.traceFlags) facts.traceId = context.traceId;
        try {
          const passthrough = parseUpstreamHeaders(request.headers[HttpHeader.upstreamHeaders], catalog.projection);
          const { text, sentBytes } = await requestToolCall(nc, route, params as { name: string }, {
            callId: callIdOf(session.id, id),
            upstreamHeaders: passthrough?.get(route.upstream),
          });
          facts.argumentBytes = sentBytes;
          facts.resultBytes = Buffer.byteLength(text);
          facts.resultText = text;
          return json(reply, result(id, text));
        } catch (error) {
          const rpc = fail(error);
          markFailed(span, facts.errorCode!, rpc.message);
          return json(reply, failure(id, rpc));
        }
      },
      extractFromHttp(request.headers),
    );
  } finally {
    observer.record(facts);
  }
}
