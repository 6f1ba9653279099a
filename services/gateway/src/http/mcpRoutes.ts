import { DEFAULT_ENVIRONMENT, ErrorCode, HttpHeader, ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Admission, Gatekeeper } from "../auth/gatekeeper.js";
import type { InFlight } from "../inFlight.js";
import type { GatewayCatalog } from "../catalog.js";
import type { CallDeps } from "../callPipeline.js";
import { fastLane } from "../fastLane.js";
import { errorEnvelope } from "../jsonRpc.js";
import type { SessionTable } from "../sessions.js";
import { parseUpstreamHeaders } from "../upstreamHeaders.js";
import { edgeContext } from "../callContext.js";
import { bearerChallenge } from "../auth/challenge.js";
import { callIdOf, cancelToolCall } from "../toolCalls.js";

type McpRequest = FastifyRequest<{ Params: { virtualServer: string; environment?: string } }>;

const requestId = (body: unknown) => {
  const id = (body as { id?: unknown } | undefined)?.id;
  return typeof id === "string" || typeof id === "number" ? id : null;
};
const isToolsCall = (body: unknown) => (body as { method?: unknown } | undefined)?.method === "tools/call";
const cancelledRequest = (body: unknown) => {
  const message = body as { method?: unknown; params?: { requestId?: unknown } } | undefined;
  const id = message?.method === "notifications/cancelled" ? message.params?.requestId : undefined;
  return typeof id === "string" || typeof id === "number" ? id : undefined;
};

/** Keys of the JSON-RPC requests in a body (notifications and responses carry no id to answer). */
function requestKeys(body: unknown): string[] {
  const keys: string[] = [];
  for (const m of Array.isArray(body) ? body : [body]) {
    const { id, method } = m as { id?: unknown; method?: unknown };
    if (typeof method === "string" && (typeof id === "string" || typeof id === "number")) keys.push(`${typeof id}:${id}`);
  }
  return keys;
}

const ALLOWED_METHODS = "GET, POST, DELETE";

/** Why a parsed body is not a JSON-RPC 2.0 message (or batch), or undefined when it is one. */
function notJsonRpc(body: unknown): string | undefined {
  const messages = Array.isArray(body) ? body : [body];
  if (messages.length === 0) return "an empty batch";
  for (const m of messages) {
    if (typeof m !== "object" || m === null || Array.isArray(m)) return "a message that is not a JSON object";
    const { jsonrpc, method, id } = m as Record<string, unknown>;
    if (jsonrpc !== "2.0") return "a message without \"jsonrpc\": \"2.0\"";
    const isResponse = id !== undefined && ("result" in m || "error" in m);
    if (typeof method !== "string" && !isResponse) return "a message with neither a string \"method\" nor a result";
  }
  return undefined;
}

/** Errors at the HTTP edge: the status says what kind, the JSON-RPC envelope says exactly what. */
function sendError(reply: FastifyReply, error: ManifoldError, id: string | number | null, presentedToken: boolean) {
  if (error.code === "unauthorized") {
    reply.header("WWW-Authenticate", bearerChallenge(presentedToken ? error.message : undefined));
  }
  if (error.code === "rate_limited") reply.header("Retry-After", String(error.data?.retryAfterSeconds ?? 60));
  const envelope = errorEnvelope(error.code, error.message, id);
  if (error.data) Object.assign(envelope.error.data, error.data);
  return reply.status(ErrorCode[error.code].http).type("application/json").send(envelope);
}

/**
 * `/mcp/:virtualServer`: the Streamable HTTP endpoint of each virtual server. Every request is
 * admitted first (credentials, grant, rate limit). Requests of a live session go to the fast
 * lane or to the session's SDK transport; a request without a session may only initialize.
 */
export function registerMcpRoutes(
  app: FastifyInstance,
  catalog: GatewayCatalog,
  sessions: SessionTable,
  gatekeeper: Gatekeeper,
  deps: CallDeps,
  inFlight: InFlight,
  createServer: (virtualServer: string, environment: string, principal: Principal) => Server,
): void {
  const refuse = (reply: FastifyReply, error: ManifoldError, request: McpRequest, principal?: Principal) => {
    deps.observer.refused(error.code, principal);
    return sendError(reply, error, requestId(request.body), request.headers.authorization !== undefined);
  };

  const handle = async (request: McpRequest, reply: FastifyReply) => {
    const { virtualServer, environment = DEFAULT_ENVIRONMENT } = request.params;
    let admission: Admission | undefined;
    let upstreamHeaders: ReadonlyMap<string, Record<string, string>> | undefined;
    try {
      if (inFlight.draining) throw new ManifoldError("shutting_down", "this gateway is shutting down; retry on another replica");
      admission = await gatekeeper.admit(virtualServer, environment, request.headers.authorization);
      const rawHeaders = request.headers[HttpHeader.upstreamHeaders];
      if (rawHeaders !== undefined) {
        const reachable = catalog.view(virtualServer, environment)?.visible(admission.access.denied).passthrough ?? new Map<string, ReadonlySet<string>>();
        upstreamHeaders = parseUpstreamHeaders(rawHeaders, reachable, virtualServer);
      }
      if (request.method === "POST") {
        const problem = notJsonRpc(request.body);
        if (problem) throw new ManifoldError("invalid_request", `invalid request: the body is ${problem}`);
        if (isToolsCall(request.body)) await gatekeeper.countCall(virtualServer, admission);
      }
    } catch (error) {
      if (error instanceof ManifoldError) return refuse(reply, error, request, admission?.principal);
      throw error;
    }
    const { principal } = admission;

    const sessionId = request.headers["mcp-session-id"];
    if (typeof sessionId === "string") {
      let session: Awaited<ReturnType<SessionTable["find"]>>;
      try {
        session = await sessions.find(sessionId, virtualServer, environment, principal, () => createServer(virtualServer, environment, principal));
      } catch (error) {
        // The session directory is on the bus: `bus_unavailable` while NATS is away.
        if (error instanceof ManifoldError) return refuse(reply, error, request, principal);
        throw error;
      }
      if (!session) return refuse(reply, new ManifoldError("session_not_found", `session '${sessionId}' does not exist or has expired`), request, principal);
      if (request.method === "POST") {
        // The call may be running on another replica: the cancellation goes to every connector.
        // The SDK routes answers by request id: a second request with an id still in flight would
        // never be answered, so it is refused now. Ids are released when their response ends.
        const keys = requestKeys(request.body);
        if (keys.length > 0) {
          const clash = keys.find((key, i) => session.pendingIds.has(key) || keys.indexOf(key) !== i);
          if (clash) {
            const taken = new ManifoldError("duplicate_request_id", `request id ${clash.slice(clash.indexOf(":") + 1, 200)} is already in flight in this session`);
            return refuse(reply, taken, request, principal);
          }
          for (const key of keys) session.pendingIds.add(key);
          reply.raw.once("close", () => {
            for (const key of keys) session.pendingIds.delete(key);
          });
        }
        const cancelled = cancelledRequest(request.body);
        if (cancelled !== undefined) cancelToolCall(deps.nc, callIdOf(session.id, cancelled));
        const answered = fastLane(deps, session, admission.access, upstreamHeaders, request, reply);
        if (answered) return answered instanceof Promise ? inFlight.track(answered) : answered;
      }
      return sessions.handle(session, request, reply, upstreamHeaders && edgeContext(principal.id, upstreamHeaders));
    }
    if (request.method !== "POST" || !isInitializeRequest(request.body)) {
      const missing = new ManifoldError("session_required", "missing Mcp-Session-Id header: only an initialize request may start a session");
      return refuse(reply, missing, request, principal);
    }
    try {
      sessions.mustAdmit(principal);
    } catch (error) {
      if (error instanceof ManifoldError) return refuse(reply, error, request, principal);
      throw error;
    }
    const server = createServer(virtualServer, environment, principal);
    try {
      return reply.send(await sessions.open(virtualServer, environment, principal, server, request));
    } catch (error) {
      if (error instanceof ManifoldError) return refuse(reply, error, request, principal);
      throw error;
    }
  };

  // `/mcp/<virtual-server>` is the default environment; `/mcp/<environment>/<virtual-server>` any other.
  const notAllowed = (request: FastifyRequest, reply: FastifyReply) =>
    reply
      .status(405)
      .header("allow", ALLOWED_METHODS)
      .type("application/json")
      .send(errorEnvelope("method_not_allowed", `${request.method} is not served on an MCP endpoint; use ${ALLOWED_METHODS}`));
  for (const path of ["/mcp/:virtualServer", "/mcp/:environment/:virtualServer"]) {
    app.post(path, handle);
    app.get(path, { exposeHeadRoute: false }, handle);
    app.delete(path, handle);
    // HEAD would reach the SDK transport, which has no answer for it.
    app.route({ method: ["HEAD", "PUT", "PATCH", "OPTIONS"], url: path, handler: notAllowed });
  }
}
