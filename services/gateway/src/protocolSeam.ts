import { DEFAULT_ENVIRONMENT, HttpHeader, MODERN_MCP_REVISION, ManifoldError, isRecord, jsonRpcCodeOf, retryAfterOf } from "@manifold/contracts";
import { SUPPORTED_PROTOCOL_VERSIONS, isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import { mustBeToolCallParams, serveToolCall } from "./callPipeline.js";
import type { CallDeps } from "./callDeps.js";
import { edgeContext, type CancelTarget } from "./callContext.js";
import type { InFlight } from "./inFlight.js";
import type { JsonRpcError } from "./jsonRpc.js";
import { callIdOf, modernHeadersAgree, type McpCall } from "./mcpCall.js";
import type { ModernServers } from "./modernServers.js";
import { ResultEncoding, type ServerIdentity } from "./resultEncoding.js";
import { mustBeKeptSize } from "./keptRequests.js";
import type { SessionServer, SessionTable, SessionTarget } from "./sessions.js";
import { notServed } from "./auth/gatekeeper.js";
import { cancelToolCall } from "./toolCalls.js";
import { allowedInteractions, envelopeCapabilities } from "./interactions.js";
import { LOG_LEVEL_META, sessionLogLevel } from "./callLogs.js";
import { declaresTasks, taskSupportOf } from "./tasks.js";
import { mustBeBoundedParams } from "./boundedParams.js";
import { isLegacyRequest } from "./legacyRequest.js";
import { mustMatchParamHeaders } from "./paramHeaders.js";
import { FAST_COST, sdkCost, widthCost, type RequestBudget } from "./auth/requestBudget.js";
import type { WatchStream } from "./admittedStreams.js";

/** JSON-RPC "Missing required client capability" (2026-07-28): a task the agent cannot take, or a consent it cannot be asked for. */
const MISSING_CLIENT_CAPABILITY = jsonRpcCodeOf("missing_client_capability", "modern");

export interface SeamOptions {
  /** `GATEWAY_FAST_PATH`: off sends every request to its era's SDK (the suites prove both equal). */
  fastPath: boolean;
  listTtlMs: number;
  version: string;
  /** Each caller's requests per second on this replica (none with authentication off): charged by the lane that serves. */
  budget: RequestBudget | undefined;
  /** Keeps a 2025 session's GET stream open only while its request would be admitted (`AdmittedStreams`). */
  watchStream: WatchStream;
}

type FastPath = "list" | "call" | "discover" | "accepted";
const isId = (id: unknown): id is string | number => typeof id === "string" || (typeof id === "number" && Number.isInteger(id));
/** The request ids a message (or a 2025-03-26 batch) cancels with `notifications/cancelled`. */
const cancelledRequests = (body: unknown): (string | number)[] => {
  const cancelled: (string | number)[] = [];
  for (const message of (Array.isArray(body) ? body : [body]) as ({ method?: unknown; params?: { requestId?: unknown } } | undefined)[]) {
    const id = message?.method === "notifications/cancelled" ? message.params?.requestId : undefined;
    if (typeof id === "string" || typeof id === "number") cancelled.push(id);
  }
  return cancelled;
};

/**
 * A single 2026-07-28 notification naming the revision in its header (and in `_meta`, when it has
 * an envelope) and its method in `Mcp-Method`: the 2.x SDK builds a whole server for it (up to
 * ~2 ms here) to answer 202 and nothing else, since a request-scoped server keeps no state it could
 * change. The fast path answers it so, at the price of a fast answer.
 */
function isModernNotification(call: McpCall, headers: FastifyRequest["headers"]): boolean {
  const body = call.body as { id?: unknown; method?: unknown } | undefined;
  return (
    call.revision === MODERN_MCP_REVISION &&
    isRecord(body) &&
    body.id === undefined &&
    typeof body.method === "string" &&
    body.method.startsWith("notifications/") &&
    headers[HttpHeader.protocolVersion] === MODERN_MCP_REVISION &&
    headers[HttpHeader.mcpMethod] === body.method
  );
}

/**
 * The one place an admitted MCP request is served, for both eras: it decides once whether the
 * fast path may answer (tools/list from the catalog's bytes, tools/call without progress as one
 * bus request), owns cancellation and in-flight tracking, and encodes fast answers per era. The
 * SDKs sit behind it: 2025-era sessions (1.x, `SessionTable`) and the 2026-07-28 handler (2.x,
 * `ModernServers`) answer everything else, protocol errors included. The fast path only ever
 * answers requests its era's SDK would accept as they are; it never refuses one itself.
 */
export class ProtocolSeam {
  readonly #deps: CallDeps;
  readonly #inFlight: InFlight;
  readonly #sessions: SessionTable;
  readonly #modern: ModernServers;
  readonly #options: SeamOptions;
  readonly #encoding: ResultEncoding;
  readonly #identities = new Map<string, ServerIdentity>();
  readonly #legacyServer: (call: McpCall) => SessionServer;

  constructor(deps: CallDeps, inFlight: InFlight, sessions: SessionTable, modern: ModernServers, legacyServer: (call: McpCall) => SessionServer, options: SeamOptions) {
    this.#deps = deps;
    this.#inFlight = inFlight;
    this.#sessions = sessions;
    this.#modern = modern;
    this.#legacyServer = legacyServer;
    this.#options = options;
    this.#encoding = new ResultEncoding(options.listTtlMs);
  }

  /**
   * Serves the request; a ManifoldError thrown here (or rejected) is refused by the edge, like an
   * admission failure. Not `async`, nor is the modern lane: each async layer that only returns its
   * lane's promise wraps it in another, resolved a turn later (the edge awaits either inside one try).
   */
  serve(call: McpCall, request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
    // The edge holds a call until its answer is read (`InFlight`); a drain that began while it
    // admitted the request (an await) refuses it here, before any lane runs it.
    if (call.upstreamCalls > 0) this.#inFlight.mustAccept();
    // A wide or large body is paid for once, whichever lane then serves it (and before any does).
    this.#options.budget?.takeWidth(call.principal, widthCost(call.bodyKeys, call.bodyLength));
    mustBeBoundedParams(call.body);
    return call.era === "modern" ? this.#serveModern(call, request, reply) : this.#serveLegacy(call, request, reply);
  }

  #serveModern(call: McpCall, request: FastifyRequest, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
    let cancels: CancelTarget | undefined;
    if (call.method === "tools/call") {
      mustMatchParamHeaders(this.#deps.catalog, call, request.headers);
      // Closed while it was admitted (its awaits): nobody waits for its answer, and nothing has gone
      // upstream yet. Before, its close had passed unheard, and the call ran upstream to its end.
      if (reply.raw.destroyed) return reply.send();
      // 2026-07-28: closing the response stream is the cancellation (there is no session to name it);
      // a retry points it at the held call it resumes.
      const target = (cancels = { id: callIdOf(call) });
      reply.raw.once("close", () => {
        if (!reply.raw.writableFinished) cancelToolCall(this.#deps.nc, target.id);
      });
    }
    const fast = this.#fastPathOf(call, request, envelopeCapabilities(call));
    this.#charge(call, fast);
    if (fast) return this.#answer(fast, call, cancels?.id, reply);
    return this.#modern.handle(call, cancels, request, reply);
  }

  async #serveLegacy(call: McpCall, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const { sessionId, virtualServer, environment, principal } = call;
    if (sessionId === undefined) {
      // Measured before the SDK's schema walks it: 500,000 numbers in clientInfo.icons held the event
      // loop ~2 s for every tenant before the session's size bound refused it (gatewayBoundedWork.e2e).
      if (call.method === "initialize") mustBeKeptSize(call.body);
      if (request.method !== "POST" || !isInitializeRequest(call.body)) {
        throw new ManifoldError("session_required", "missing Mcp-Session-Id header: only an initialize request may start a session");
      }
      // Charged before the session limits scan every session here: a refused initialize costs what an admitted one does.
      this.#charge(call, undefined);
      this.#sessions.mustAdmit(principal);
      const target = this.#sessionTarget(call);
      if (!target) throw notServed(virtualServer, environment);
      return reply.send(await this.#sessions.open(target, principal, this.#legacyServer(call), request));
    }
    // A session held elsewhere, or by no one, is looked up in the directory, on the bus
    // (`bus_unavailable` while NATS is away): paid for first, like an SDK message, so unknown ids
    // spend their caller's budget, not the bus's time.
    if (!this.#sessions.holds(sessionId)) this.#charge(call, undefined);
    const target = this.#sessionTarget(call);
    const found = target && this.#sessions.find(sessionId, target, principal, () => this.#legacyServer(call));
    const session = found instanceof Promise ? await found : found;
    if (!session) throw new ManifoldError("session_not_found", `session '${sessionId}' does not exist or has expired`);
    if (request.method !== "POST") {
      this.#charge(call, undefined);
      if (request.method === "GET") this.#options.watchStream(call, request, reply.raw);
      return this.#sessions.handle(session, request, reply, edgeContext(call));
    }
    // The 1.x SDK would answer a malformed tools/call with -32603 and its schema's text:
    // Manifold's answer is `invalid_arguments`, whichever path serves the session.
    if (call.method === "tools/call") mustBeToolCallParams((call.body as { params?: unknown }).params);
    // A session that set a log level gets its calls' log messages on their streams: the SDK lane.
    const fast = sessionLogLevel(session.server) === undefined ? this.#fastPathOf(call, request, session.server.getClientCapabilities() as Record<string, unknown> | undefined) : undefined;
    // Charged before anything is claimed or relayed: a request over its caller's budget costs no more than its refusal.
    this.#charge(call, fast);
    session.pendingIds.claim(call.body, reply, (id) => this.#inFlight.ended(callIdOf(call, id)));
    // The call may be running on another replica: the cancellation goes to every connector.
    const cancelled = cancelledRequests(call.body);
    for (const id of cancelled) cancelToolCall(this.#deps.nc, callIdOf(call, id));
    // The fast path serves single requests only: a cancellation is the SDK lane's, which answers the cancelled requests.
    if (fast) return this.#answer(fast, call, undefined, reply);
    return this.#sessions.handle(session, request, reply, edgeContext(call), cancelled);
  }

  /** The virtual server and environment a 2025 session is for, as they are now (undefined: deleted since the request was admitted). */
  #sessionTarget(call: McpCall): SessionTarget | undefined {
    const { projection } = this.#deps.catalog;
    const created = projection.virtualServer(call.virtualServer)?.created;
    const environmentCreated = call.environment === DEFAULT_ENVIRONMENT ? 0 : projection.environment(call.environment)?.created;
    return created === undefined || environmentCreated === undefined ? undefined : { virtualServer: call.virtualServer, created, environment: call.environment, environmentCreated };
  }

  /** Takes what the request costs from its caller's budget, by the lane that serves it (`requestBudget.ts`). */
  #charge(call: McpCall, fast: FastPath | undefined): void {
    this.#options.budget?.take(call.principal, fast ? FAST_COST : sdkCost(call.body));
  }

  /**
   * Whether the fast path answers: a single tools/list, or tools/call without a progress token
   * (progress needs a stream), that its era's SDK would accept unchanged. A 2025 request must
   * accept JSON and SSE and name a version the 1.x transport knows; a 2026-07-28 request must be
   * well formed by the 2.x classifier, name the served revision and carry the mirrored headers
   * verbatim. Anything else (a refusal to write, an encoded Mcp-Name) goes to the SDK.
   */
  #fastPathOf(call: McpCall, request: FastifyRequest, declared: Record<string, unknown> | undefined): FastPath | undefined {
    if (!this.#options.fastPath) return undefined;
    if (call.era === "modern" && isModernNotification(call, request.headers)) return "accepted";
    if (!isId(call.requestId)) return undefined;
    // The 1.x transport's own verdict on the message (a strict request, `_meta` an object), its
    // schema written out (`isLegacyRequest`). Refused there (400, parse error), a member too many or
    // a `_meta` of null was answered here.
    if (call.era === "legacy" && !isLegacyRequest(call.body)) return undefined;
    const params = (call.body as { params?: unknown }).params;
    if (params !== undefined && !isRecord(params)) return undefined;
    let kind: FastPath;
    if (call.method === "tools/list") {
      // A virtual server deleted since admission is the SDK lane's to report, and any cursor the SDK lane's to refuse (`mustNotPage`).
      if (!this.#deps.catalog.view(call.virtualServer, call.environment) || params?.cursor !== undefined) return undefined;
      kind = "list";
    }
    // A 2026-07-28 server/discover, once the SDK has answered it for what this caller sees (`ModernServers.discovery`).
    else if (call.method === "server/discover" && call.era === "modern" && this.#modern.discovery(call) !== undefined) kind = "discover";
    else if (call.method === "tools/call" && !(isRecord(params?._meta) && (params._meta.progressToken !== undefined || params._meta[LOG_LEVEL_META] !== undefined))) {
      // A call whose agent may be asked something (or answers a round) needs the SDK lane: a stream
      // for 2025, requestState for 2026-07-28. Others carry no interaction header and pay nothing.
      if (params?.requestState !== undefined || params?.inputResponses !== undefined) return undefined;
      // Arguments that are not an object are the SDK's to refuse, in its own words (a 2025 request's never get here).
      if (params?.arguments !== undefined && !isRecord(params.arguments)) return undefined;
      // A task (2025: the agent's `task`; 2026-07-28: a tool whose pin requires tasks, answered with a
      // task or, to a request without the extension, -32021 as the SDK writes it; or one that may
      // answer with a task, to a request that declares the extension) goes to the SDK lane.
      if (params?.task !== undefined) return undefined;
      if (call.era === "modern" && typeof params?.name === "string" && this.#mayTask(call, params.name, declared)) return undefined;
      if (allowedInteractions(this.#deps.catalog, call, declared)) return undefined;
      kind = "call";
    } else return undefined;
    const headers = request.headers;
    const version = headers[HttpHeader.protocolVersion];
    if (call.era === "legacy") {
      const accept = headers.accept ?? "";
      if (!accept.includes("application/json") || !accept.includes("text/event-stream")) return undefined;
      return version === undefined || (typeof version === "string" && SUPPORTED_PROTOCOL_VERSIONS.includes(version)) ? kind : undefined;
    }
    if (!modernHeadersAgree(call, headers)) return undefined;
    // A header in the Base64 sentinel form (`=?base64?…?=`) is the SDK's to decode, even where it repeats the body verbatim.
    return kind !== "call" || (typeof params?.name === "string" && headers[HttpHeader.mcpName] === params.name && !params.name.startsWith("=?base64?")) ? kind : undefined;
  }

  /** Only a tool whose pin allows tasks costs more than the route lookup: the envelope's capabilities are read for it. */
  #mayTask(call: McpCall, exposed: string, declared: Record<string, unknown> | undefined): boolean {
    const route = this.#deps.catalog.view(call.virtualServer, call.environment)?.routes.get(exposed);
    const support = route === undefined ? "forbidden" : taskSupportOf(route);
    return support === "required" || (support === "optional" && declaresTasks(declared));
  }

  #answer(kind: FastPath, call: McpCall, callId: string | undefined, reply: FastifyReply): FastifyReply | Promise<FastifyReply> {
    const id = call.requestId!;
    const server = this.#identity(call.virtualServer);
    if (kind === "list") {
      const view = this.#deps.catalog.view(call.virtualServer, call.environment)!;
      // The cached list bytes go out as they are, between an envelope head and tail.
      const list = this.#encoding.list(call.era, view, view.visible(call.access.denied), server);
      const [head, tail] = this.#encoding.envelope(id);
      return this.#json(reply, 200, head, list, tail);
    }
    if (kind === "accepted") {
      reply.hijack();
      reply.raw.writeHead(202, { "content-length": 0 }).end();
      return reply;
    }
    if (kind === "discover") {
      const [head, tail] = this.#encoding.envelope(id);
      return this.#json(reply, 200, head, this.#modern.discovery(call)!, tail);
    }
    const params = ((call.body as { params?: Record<string, unknown> }).params ?? {}) as { name?: unknown; arguments?: unknown };
    // Nothing is written on this response until its answer: the caller's unread bytes need not read it till then.
    this.#inFlight.writesAtEnd(reply.raw, call.principal);
    return serveToolCall(this.#deps, { call, callId: callId ?? callIdOf(call), requestId: id, params }).then(
      // Without an interaction header the connector never pauses the call: the outcome is its result.
      (text) => this.#answered(call, reply, 200, this.#encoding.callResult(call.era, id, text as string, server)),
      (error: JsonRpcError) => {
        // An upstream that pushed back (429, 503) said when to come back: so does the answer, as a gateway limit's does.
        const retryAfter = retryAfterOf(error.data);
        if (retryAfter !== undefined) reply.raw.setHeader("retry-after", retryAfter);
        // 2026-07-28: a missing client capability (an upstream's task the agent cannot take, a consent it cannot be asked for) is HTTP 400, as the SDK lane writes it.
        return this.#answered(call, reply, call.era === "modern" && error.code === MISSING_CLIENT_CAPABILITY ? 400 : 200, this.#encoding.failure(id, error));
      },
    );
  }

  /** A call's answer, written whole: counted among the caller's unread bytes while the kernel has yet to take some of it. */
  #answered(call: McpCall, reply: FastifyReply, status: number, answer: string | Uint8Array): FastifyReply {
    this.#json(reply, status, answer);
    this.#inFlight.wrote(reply.raw, call.principal);
    return reply;
  }

  /**
   * A fast answer, its parts written on the raw response as they are (the list's cached bytes
   * between an envelope head and tail): fastify's send path (hooks, serialisers) has nothing to add.
   */
  #json(reply: FastifyReply, status: number, ...parts: (string | Uint8Array)[]): FastifyReply {
    let length = 0;
    for (const part of parts) length += typeof part === "string" ? Buffer.byteLength(part) : part.length;
    reply.hijack();
    reply.raw.writeHead(status, { "content-type": "application/json", "content-length": length });
    for (let i = 0; i < parts.length - 1; i++) reply.raw.write(parts[i]!);
    reply.raw.end(parts[parts.length - 1]);
    return reply;
  }

  #identity(virtualServer: string): ServerIdentity {
    let identity = this.#identities.get(virtualServer);
    if (!identity) this.#identities.set(virtualServer, (identity = { name: `manifold-${virtualServer}`, version: this.#options.version }));
    return identity;
  }
}
