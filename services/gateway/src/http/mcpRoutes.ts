import { DEFAULT_ENVIRONMENT, ErrorCode, HttpHeader, ManifoldError, RELATED_TASK, isRecord, retryAfterOf, withRetryHint, type Era } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from "fastify";
import type { Admission, Gatekeeper } from "../auth/gatekeeper.js";
import type { InFlight } from "../inFlight.js";
import type { GatewayCatalog } from "../catalog.js";
import type { CallObserver } from "../callObserver.js";
import { errorEnvelope } from "../jsonRpc.js";
import { admittedCall, classify, eraOfHeaders, type McpCall } from "../mcpCall.js";
import type { ProtocolSeam } from "../protocolSeam.js";
import { parseUpstreamHeaders } from "../upstreamHeaders.js";
import { bearerChallenge } from "../auth/challenge.js";
import type { ProtectedResource } from "../auth/protectedResource.js";
import { closeBeforeBody } from "./unreadBody.js";
import { LargeBodies } from "./largeBodies.js";
import { AnswersBeingWritten } from "./answersBeingWritten.js";

declare module "fastify" {
  interface FastifyRequest {
    /** An MCP request's admission, decided when its headers arrived (`registerMcpRoutes`); null on other routes. */
    admission: Admission | null;
  }
}

type McpRequest = FastifyRequest<{ Params: { virtualServer: string; environment?: string } }>;

const requestId = (body: unknown) => {
  const id = (body as { id?: unknown } | undefined)?.id;
  return typeof id === "string" || typeof id === "number" ? id : null;
};
/** The methods an MCP endpoint serves (its `Allow`, and what a browser agent is told it may send). */
export const ALLOWED_METHODS = "GET, POST, DELETE";

/** Why a parsed body is not a JSON-RPC 2.0 message (or batch), or undefined when it is one. */
function notJsonRpc(body: unknown): string | undefined {
  if (!Array.isArray(body)) return notJsonRpcMessage(body);
  if (body.length === 0) return "an empty batch";
  // Before anything walks it: the SDK refuses more too, but only after work that grew faster than
  // the batch (10,000 pings, 516 KB, held the event loop 565-745 ms for every other tenant).
  if (body.length > MAX_BATCH) return `a batch of more than ${MAX_BATCH} messages`;
  let lists = 0;
  for (const m of body) {
    const problem = notJsonRpcMessage(m);
    if (problem) return problem;
    if (LISTS.has((m as { method?: unknown }).method as string) && ++lists > MAX_LISTS_PER_BATCH) return `a batch of more than ${MAX_LISTS_PER_BATCH} list requests (send them in requests of their own)`;
  }
  return undefined;
}

/**
 * Most list requests in one batch. A batch is answered whole, every answer built before it is
 * written: 40 tools/list of a ~6 MB list held 185 MiB at once for one request (one answer being
 * written, 40 units of the budget); one of each list fits.
 */
const MAX_LISTS_PER_BATCH = 4;
const LISTS: ReadonlySet<string> = new Set(["tools/list", "prompts/list", "resources/list", "resources/templates/list"]);

/** The list requests of a batch (0 for a single message): each list answer a batch holds is as large as one on its own. */
const listsIn = (body: unknown) => (Array.isArray(body) ? body.filter((m) => LISTS.has((m as { method?: unknown }).method as string)).length : 0);

/** Most messages in a 2025-03-26 batch, as the SDK's transport allows. */
const MAX_BATCH = 100;

/** Longest progress token accepted: every progress notification of a call repeats it. */
const MAX_PROGRESS_TOKEN = 256;

function notJsonRpcMessage(m: unknown): string | undefined {
  if (!isRecord(m)) return "a message that is not a JSON object";
  const { jsonrpc, method, id, params } = m;
  if (jsonrpc !== "2.0") return "a message without \"jsonrpc\": \"2.0\"";
  const isResponse = id !== undefined && ("result" in m || "error" in m);
  if (typeof method !== "string" && !isResponse) return "a message with neither a string \"method\" nor a result";
  // MCP ids are strings or integers, never null: the 1.x transport answered any other as -32700
  // "Parse error", a body of valid JSON read as unparseable (the 2.x one answers -32600 itself).
  if (id !== undefined && typeof id !== "string" && !Number.isSafeInteger(id)) return "a message whose \"id\" is neither a string nor an integer";
  // The rest of the shape both SDKs' message schemas hold a message to (strict members, objects
  // where objects go): the 1.x transport answered each other shape -32700 "Parse error" too.
  const members = typeof method === "string" ? (id === undefined ? NOTIFICATION_MEMBERS : REQUEST_MEMBERS) : "result" in m ? RESULT_MEMBERS : ERROR_MEMBERS;
  for (const key in m) if (!members.has(key)) return `a message with a member JSON-RPC does not define for it ("${key.slice(0, 64)}")`;
  if (typeof method === "string") {
    if (params !== undefined && !isRecord(params)) return "a message whose \"params\" is not an object";
    // A 256 KiB token on a call of 1,000 steps queued ~500 MiB of notifications for a client that did not read.
    const token = isRecord(params?._meta) ? params._meta.progressToken : undefined;
    if (typeof token === "string" && token.length > MAX_PROGRESS_TOKEN) return `a message whose params._meta.progressToken is longer than ${MAX_PROGRESS_TOKEN} characters`;
    return notMeta(params?._meta, "params._meta");
  }
  if ("result" in m) return isRecord(m.result) ? notMeta(m.result._meta, "result._meta") : "a response whose \"result\" is not an object";
  const error = m.error;
  return isRecord(error) && Number.isSafeInteger(error.code) && typeof error.message === "string" ? undefined : "an error response whose \"error\" is not an object with an integer \"code\" and a string \"message\"";
}

/** The members each kind of JSON-RPC message may have (the 1.x SDK's schemas are strict; so is the 2.x classifier). */
const REQUEST_MEMBERS: ReadonlySet<string> = new Set(["jsonrpc", "id", "method", "params"]);
const NOTIFICATION_MEMBERS: ReadonlySet<string> = new Set(["jsonrpc", "method", "params"]);
const RESULT_MEMBERS: ReadonlySet<string> = new Set(["jsonrpc", "id", "result"]);
const ERROR_MEMBERS: ReadonlySet<string> = new Set(["jsonrpc", "id", "error"]);

/** Why a message's `_meta` is not one MCP defines (an object; a progress token a string or an integer; a related task naming a string id), if it is not. */
function notMeta(meta: unknown, where: string): string | undefined {
  if (meta === undefined) return undefined;
  if (!isRecord(meta)) return `a message whose ${where} is not an object`;
  const token = meta.progressToken;
  if (token !== undefined && typeof token !== "string" && !Number.isSafeInteger(token)) return `a message whose ${where}.progressToken is neither a string nor an integer`;
  const related = meta[RELATED_TASK];
  if (related !== undefined && !(isRecord(related) && typeof related.taskId === "string")) return `a message whose ${where}["${RELATED_TASK}"] names no string taskId`;
  return undefined;
}

/** Errors at the HTTP edge: the status says what kind, the JSON-RPC envelope (in the code of the request's era) says exactly what. */
function sendError(reply: FastifyReply, error: ManifoldError, era: Era, id: string | number | null, presentedToken: boolean, resource?: { metadata: string; scopes: readonly string[] }) {
  if (error.code === "unauthorized") {
    reply.header("WWW-Authenticate", bearerChallenge(presentedToken ? error.message : undefined, resource?.metadata, resource?.scopes));
  }
  const data = withRetryHint(error.code, error.data);
  const retryAfter = retryAfterOf(data);
  if (retryAfter !== undefined || error.code === "rate_limited") reply.header("Retry-After", retryAfter ?? "60");
  const envelope = errorEnvelope(error.code, error.message, era, id);
  if (data) Object.assign(envelope.error.data, data);
  return reply.status(ErrorCode[error.code].http).type("application/json").send(envelope);
}

/**
 * `/mcp/:virtualServer`: the Streamable HTTP endpoint of each virtual server, for every MCP
 * revision. Every request is admitted when its headers arrive (credentials, grant), before its body
 * is read: a refusal is answered at once and its body never read (each body is read whole into
 * memory: 480 connections without credentials, each sending most of a 1 MiB body, held +411 MiB),
 * and an admitted caller has at most `MAX_LARGE_BODIES` large ones arriving at once. Once the body
 * is in, the rest (rate limit, pass-through headers, JSON-RPC shape) is checked and the request
 * built once into the call object the protocol seam serves.
 */
export function registerMcpRoutes(
  app: FastifyInstance,
  catalog: GatewayCatalog,
  gatekeeper: Gatekeeper,
  observer: CallObserver,
  inFlight: InFlight,
  seam: ProtocolSeam,
  resource: ProtectedResource,
  { bodyLimit, linkAgentTrace }: { bodyLimit: number; linkAgentTrace: boolean },
): void {
  /** `era`: the request's, as classified; before that (refused on its headers, or its body refused), as its headers name it. */
  const refuse = (reply: FastifyReply, error: ManifoldError, request: McpRequest, era: Era, principal?: Principal) => {
    observer.refused(error.code, principal);
    const metadata = error.code === "unauthorized" ? resource.metadataUrlOf(request) : undefined;
    const challenge = metadata === undefined ? undefined : { metadata, scopes: resource.scopes };
    return sendError(reply, error, era, requestId(request.body), request.headers.authorization !== undefined, challenge);
  };

  /** Refused on its headers: answered with no id (the body is not read), and the connection closed if a body is to come. */
  const refuseUnread = (error: unknown, request: McpRequest, reply: FastifyReply, done: HookHandlerDoneFunction, principal?: Principal) => {
    if (!(error instanceof ManifoldError)) return done(error as Error);
    void refuse(closeBeforeBody(request, reply), error, request, eraOfHeaders(request.headers), principal);
  };
  // Every request has the field, so all have one shape; only these routes set it.
  app.decorateRequest("admission", null);
  const largeBodies = new LargeBodies();
  // With authentication off (trusted setups) no share is kept, as for the request budget.
  const answers = gatekeeper.authenticator ? new AnswersBeingWritten() : undefined;
  /** Admitted: a large body takes one of its caller's places (or is refused) before it is read. */
  const admitted = (admission: Admission, request: McpRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    try {
      largeBodies.take(request.raw, admission.principal);
    } catch (error) {
      return refuseUnread(error, request, reply, done, admission.principal);
    }
    request.admission = admission;
    done();
  };
  // A credential already verified is admitted without a promise, and the request goes on at once.
  const admit = (request: McpRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const { virtualServer, environment = DEFAULT_ENVIRONMENT } = request.params;
    let admission: Admission | Promise<Admission>;
    try {
      inFlight.mustAccept();
      admission = gatekeeper.admit(virtualServer, environment, request.headers.authorization, () => resource.resourceOf(request), request.ip);
    } catch (error) {
      return refuseUnread(error, request, reply, done);
    }
    if (!(admission instanceof Promise)) return admitted(admission, request, reply, done);
    admission.then(
      (verified) => admitted(verified, request, reply, done),
      (error: unknown) => refuseUnread(error, request, reply, done),
    );
  };

  const handle = async (request: McpRequest, reply: FastifyReply) => {
    const { virtualServer, environment = DEFAULT_ENVIRONMENT } = request.params;
    // Set by `admit` before the body was read.
    const admission = request.admission!;
    let call: McpCall | undefined;
    try {
      // Again: a drain may have begun while the body arrived.
      inFlight.mustAccept();
      const rawHeaders = request.headers[HttpHeader.upstreamHeaders];
      let upstreamHeaders: ReadonlyMap<string, Record<string, string>> | undefined;
      if (rawHeaders !== undefined) {
        // A visible tool's upstream, or a visible prompt's, resource's or template's: item requests carry the caller's headers too.
        const reachable = catalog.view(virtualServer, environment)?.passthroughFor(admission.access.denied, admission.access.deniedItems) ?? new Map<string, ReadonlySet<string>>();
        upstreamHeaders = parseUpstreamHeaders(rawHeaders, reachable, virtualServer);
      }
      if (request.method === "POST") {
        const problem = notJsonRpc(request.body);
        if (problem) throw new ManifoldError("invalid_request", `invalid request: the body is ${problem}`);
      }
      call = admittedCall(request, classify(request), { virtualServer, environment }, admission, upstreamHeaders, linkAgentTrace);
      // Held from here until the answer is read (or the connection gone): a shutdown waits for it,
      // and the caller's calls in flight are bounded. Every request that goes upstream counts, a batch's too.
      if (call.upstreamCalls > 0) inFlight.hold(reply.raw, admission.principal, call.upstreamCalls);
      // Any other answer but a long-lived stream's (those have bounds of their own) counts while it is
      // being written, and so does a batch's with lists in it: each list a place of its own.
      const lists = listsIn(request.body);
      if ((call.upstreamCalls === 0 || lists > 0) && request.method !== "GET" && call.method !== "subscriptions/listen") answers?.take(reply.raw, admission.principal, Math.max(1, lists));
      // The rate limit also counts the resource subscriptions it asks upstreams for (`meteredCalls`).
      const counted = call.meteredCalls > 0 ? gatekeeper.countCall(virtualServer, admission, call.meteredCalls) : undefined;
      if (counted) await counted;
      return await seam.serve(call, request, reply);
    } catch (error) {
      if (error instanceof ManifoldError) return refuse(reply, error, request, call?.era ?? eraOfHeaders(request.headers), admission.principal);
      throw error;
    }
  };

  // `/mcp/<virtual-server>` is the default environment; `/mcp/<environment>/<virtual-server>` any other.
  // Answered when the headers arrive, before any body is read.
  const notAllowed = (request: FastifyRequest, reply: FastifyReply) =>
    closeBeforeBody(request, reply)
      .status(405)
      .header("allow", ALLOWED_METHODS)
      .type("application/json")
      .send(errorEnvelope("method_not_allowed", `${request.method} is not served on an MCP endpoint; use ${ALLOWED_METHODS}`, eraOfHeaders(request.headers)));
  for (const path of ["/mcp/:virtualServer", "/mcp/:environment/:virtualServer"]) {
    app.post(path, { bodyLimit, onRequest: admit }, handle);
    app.get(path, { exposeHeadRoute: false, bodyLimit, onRequest: admit }, handle);
    app.delete(path, { bodyLimit, onRequest: admit }, handle);
    // HEAD would reach the SDK transport, which has no answer for it.
    app.route({ method: ["HEAD", "PUT", "PATCH", "OPTIONS"], url: path, onRequest: (request, reply, _done) => void notAllowed(request, reply), handler: notAllowed });
  }
}
