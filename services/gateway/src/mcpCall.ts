import { HttpHeader, MODERN_MCP_REVISION, ManifoldError, isRecord, type Era } from "@manifold/contracts";
import type { Access, Principal } from "@manifold/domain";
import { extractFromHttp, linkedRoot, type Context } from "@manifold/telemetry";
import { classifyInboundRequest } from "@modelcontextprotocol/server";
import { SUPPORTED_PROTOCOL_VERSIONS as LEGACY_PROTOCOL_VERSIONS } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyRequest } from "fastify";
import { randomBytes } from "node:crypto";
import { inboundTokenOf, type InboundToken } from "./auth/inboundToken.js";
import { recentEnvelope, rememberEnvelope } from "./recentEnvelopes.js";
// The request's `bodyKeys` and `bodyLength`, as the JSON parser measured them.
import type {} from "./http/jsonBody.js";

/**
 * The era of a request refused before its body is read or classified (its credentials, its host,
 * a route that does not exist): a 2026-07-28 client names that revision in `MCP-Protocol-Version`
 * on every request; a 2025 one names its own, or none on `initialize`.
 */
export const eraOfHeaders = (headers: FastifyRequest["headers"]): Era => (headers[HttpHeader.protocolVersion] === MODERN_MCP_REVISION ? "modern" : "legacy");

/**
 * One admitted MCP request, as the HTTP edge parsed it, exactly once: who calls, what they may
 * reach, what they pass through to upstreams, the trace it belongs to, the era it speaks and
 * the id under which a tools/call in it can be cancelled from any replica. Both SDK lanes and
 * the fast path read this; none of them parses a header again.
 */
export interface McpCall {
  readonly era: Era;
  /** The revision the request names (envelope, initialize or header), if any. */
  readonly revision: string | undefined;
  /** False when the 2.x SDK's classifier refuses the request (its answer is then the SDK's). */
  readonly wellFormed: boolean;
  readonly virtualServer: string;
  readonly environment: string;
  readonly principal: Principal;
  readonly access: Access;
  /** The agent's pass-through headers, by upstream (checked against what the caller may reach). */
  readonly upstreamHeaders: ReadonlyMap<string, Record<string, string>> | undefined;
  /** The spans' parent: the agent's trace context (`_meta.traceparent` when the message carries one, else the HTTP headers), or a link to it (`GATEWAY_AGENT_TRACE=link`). */
  readonly parent: Context;
  /** The legacy session the request names (its header), if any; modern requests have none. */
  readonly sessionId: string | undefined;
  /** The parsed body, as received. */
  readonly body: unknown;
  /** The JSON-RPC method of a single message (undefined for batches and responses). */
  readonly method: string | undefined;
  /** The JSON-RPC id of a single request. */
  readonly requestId: string | number | undefined;
  /**
   * How many requests the message (or batch) holds that go to an upstream (tools/call, resources/read,
   * prompts/get, completion/complete, a 2025 resources/subscribe, task requests): each counts against
   * the caller's rate limit and calls in flight, and is waited for on shutdown.
   */
  readonly upstreamCalls: number;
  /**
   * What the message (or batch) counts against the caller's rate limit: its `upstreamCalls`, and
   * each resource subscription a 2026-07-28 `subscriptions/listen` asks of upstreams (each URI of its
   * `resourceSubscriptions`). Those are not calls in flight: the listen stream lives long.
   */
  readonly meteredCalls: number;
  /** The body's object keys and length, as measured before it was parsed (`jsonBody.ts`): what it costs beyond its messages. */
  readonly bodyKeys: number;
  readonly bodyLength: number;
  /** The agent's bearer token, for token exchange only (it prints as `[redacted]`). */
  readonly inbound: InboundToken | undefined;
}

/** Modern calls have no session: their cancellation id is unique per replica and request. */
const REPLICA = randomBytes(6).toString("base64url");
let sequence = 0;

/**
 * The id a connector knows a tools/call by, so that a cancellation finds it on any replica: a
 * legacy call's follows from its session and JSON-RPC id (a `notifications/cancelled` names
 * both); a modern call is cancelled by closing its stream, so a fresh id per call will do.
 */
export function callIdOf(call: McpCall, requestId: string | number | undefined = call.requestId): string {
  return call.era === "legacy" ? `${call.sessionId ?? "none"}/${headerSafe(requestId)}` : `${REPLICA}:${++sequence}`;
}

/**
 * A JSON-RPC id may be any string, and the call id travels in a bus header, where a line break
 * would be refused (it could forge a header): an id with anything but printable ASCII is sent
 * percent-encoded. A string id is quoted, so `"1"` and `1`, which a session may have in flight
 * together, are two calls. Two string ids of one session that encode alike only ever cancel each other.
 */
const headerSafe = (id: string | number | undefined) => (typeof id === "string" ? `"${/[^\x20-\x7e]/.test(id) ? encodeURIComponent(id) : id}"` : id);

const header = (request: Pick<FastifyRequest, "headers">, name: string) => {
  const value = request.headers[name];
  return typeof value === "string" ? value : undefined;
};

export interface Classification {
  readonly era: Era;
  readonly revision: string | undefined;
  readonly wellFormed: boolean;
}

/** One frozen answer per 2025 version, so the hot case allocates nothing. */
const LEGACY = new Map(LEGACY_PROTOCOL_VERSIONS.map((revision): [string, Classification] => [revision, Object.freeze({ era: "legacy", revision, wellFormed: true })]));
const ENVELOPE_VERSION = "io.modelcontextprotocol/protocolVersion";
const MODERN: Classification = Object.freeze({ era: "modern", revision: MODERN_MCP_REVISION, wellFormed: true });
/** The `_meta` keys a hot 2026-07-28 request may carry: the envelope the SDK validates, and trace context it does not. */
const CLIENT_INFO = "io.modelcontextprotocol/clientInfo";
const CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities";
const LOG_LEVEL = "io.modelcontextprotocol/logLevel";
const VALIDATED_META = [CLIENT_INFO, CLIENT_CAPABILITIES, LOG_LEVEL];
const HOT_META = new Set([ENVELOPE_VERSION, ...VALIDATED_META, "traceparent", "tracestate", "baggage"]);
const HOT_BODY = new Set(["jsonrpc", "id", "method", "params"]);
/** Envelopes (by their validated values) the SDK has found well formed; clients repeat theirs on every request. */
const acceptedEnvelopes = new Set<string>();
const MAX_ENVELOPES = 1_024;
/**
 * Only envelopes this small are remembered (4,096 characters, at most ~8 MiB for all of them): the
 * values are the caller's, and 150 distinct envelopes of ~900 KB, each within the body limit, kept
 * 132 MiB here (~900 MiB at the cap). A larger one is classified by the SDK each time, as any other
 * request; a body over `MAX_HOT_BODY` is not even keyed (stringifying 900 KB cost more than the walk it saves).
 */
const MAX_ENVELOPE_KEY = 4_096;
const MAX_HOT_BODY = 8_192;

/**
 * The key under which the SDK's verdict on a hot 2026-07-28 request can be remembered, or
 * undefined when the request is not of that shape: a single tools/call or tools/list request
 * (no progress token) naming 2026-07-28 in the header and the envelope, with the body's method in
 * Mcp-Method and nothing in `_meta` but the envelope and trace context. The SDK's verdict on such
 * a request depends on the envelope's validated values alone (trace keys pass through unchecked;
 * `mcpCall.unit.spec.ts` holds the two to the same answers).
 */
function hotModernMeta(request: Pick<FastifyRequest, "method" | "headers">, version: string | undefined, body: unknown): Record<string, unknown> | undefined {
  if (version !== MODERN_MCP_REVISION || request.method !== "POST" || !isRecord(body) || !(Number(request.headers["content-length"]) <= MAX_HOT_BODY)) return undefined;
  const { method, id, params } = body;
  if ((method !== "tools/call" && method !== "tools/list") || header(request, HttpHeader.mcpMethod) !== method) return undefined;
  if (!(typeof id === "string" || Number.isInteger(id)) || body.jsonrpc !== "2.0" || !isRecord(params)) return undefined;
  for (const key in body) if (!HOT_BODY.has(key)) return undefined;
  const meta = params._meta;
  if (!isRecord(meta) || meta[ENVELOPE_VERSION] !== MODERN_MCP_REVISION) return undefined;
  for (const key in meta) if (!HOT_META.has(key) || (!VALIDATED_META.includes(key) && key !== ENVELOPE_VERSION && typeof meta[key] !== "string")) return undefined;
  return meta;
}

/** The key under which a hot request's envelope is remembered: the JSON text of its validated values. */
const envelopeKey = (meta: Record<string, unknown>): string => JSON.stringify([meta[CLIENT_INFO] ?? null, meta[CLIENT_CAPABILITIES] ?? null, meta[LOG_LEVEL] ?? null]);

/**
 * A 2026-07-28 request the 2.x SDK will serve as it is, as far as its headers go: well formed by
 * its classifier, naming the served revision in the body and the header, its method in `Mcp-Method`.
 */
export function modernHeadersAgree(call: McpCall, headers: FastifyRequest["headers"]): boolean {
  return call.wellFormed && call.revision === MODERN_MCP_REVISION && headers[HttpHeader.protocolVersion] === MODERN_MCP_REVISION && headers[HttpHeader.mcpMethod] === call.method;
}

/**
 * The era of a request, decided by the 2.x SDK's own classifier (the rule `createMcpHandler`
 * routes by): a request with a per-request `_meta` envelope, or one the modern path must refuse,
 * is modern; initialize, session traffic, batches and GET/DELETE are legacy.
 */
export function classify(request: Pick<FastifyRequest, "method" | "headers" | "body">): Classification {
  // The hot case first, without the classifier's walk (measured at 5.6 µs a request): a single
  // message under a 2025 version header whose _meta makes no envelope claim is legacy for the
  // SDK too (the claim is that _meta key, or a modern version header).
  const version = header(request, HttpHeader.protocolVersion);
  const body = request.body;
  const legacy = version === undefined ? undefined : LEGACY.get(version);
  if (legacy && isRecord(body)) {
    const meta = isRecord(body.params) ? body.params._meta : undefined;
    if (!isRecord(meta) || meta[ENVELOPE_VERSION] === undefined) return legacy;
  }
  // The hot 2026-07-28 case: the SDK's walk (7 µs) once per envelope a client uses, not per request.
  const hotMeta = hotModernMeta(request, version, body);
  // A client's own envelope again, compared by value (`recentEnvelopes.ts`), else by its text.
  if (hotMeta !== undefined && recentEnvelope(hotMeta[CLIENT_INFO], hotMeta[CLIENT_CAPABILITIES], hotMeta[LOG_LEVEL])) return MODERN;
  const hot = hotMeta === undefined ? undefined : envelopeKey(hotMeta);
  if (hot !== undefined && acceptedEnvelopes.has(hot)) {
    rememberEnvelope(hot, true);
    return MODERN;
  }
  mustBeBoundedEnvelope(body);
  const outcome = classifyInboundRequest({
    httpMethod: request.method,
    protocolVersionHeader: version,
    mcpMethodHeader: header(request, HttpHeader.mcpMethod),
    mcpNameHeader: header(request, HttpHeader.mcpName),
    body,
  });
  if (outcome.kind === "legacy") return { era: "legacy", revision: outcome.requestedVersion, wellFormed: true };
  if (outcome.kind === "reject") return { era: "modern", revision: undefined, wellFormed: false };
  const wellFormed = outcome.messageKind === "request";
  if (hot !== undefined && hot.length <= MAX_ENVELOPE_KEY && wellFormed && outcome.classification.revision === MODERN_MCP_REVISION) {
    if (acceptedEnvelopes.size >= MAX_ENVELOPES) acceptedEnvelopes.clear();
    acceptedEnvelopes.add(hot);
    rememberEnvelope(hot);
  }
  return { era: "modern", revision: outcome.classification.revision, wellFormed };
}

/** The most a 2026-07-28 envelope's client info and capabilities may take, as JSON (a client's are a few hundred bytes). */
export const MAX_ENVELOPE_BYTES = 16 * 1024;

/**
 * Refuses, before the SDK's classifier walks it, an envelope larger than `MAX_ENVELOPE_BYTES`: the
 * walk spends microseconds on each element, and 500,000 numbers in `clientInfo.icons` (1 MB) held
 * the event loop 4.7–5.9 s for every tenant, twice (the classifier, then the SDK's handler), before
 * the request was charged to its caller (gatewayBoundedWork.e2e). Measured whatever the body's
 * framing (a chunked body has no length); a client's envelope remembered as hot is not measured again.
 */
function mustBeBoundedEnvelope(body: unknown): void {
  if (!isRecord(body) || !isRecord(body.params)) return;
  const meta = body.params._meta;
  if (!isRecord(meta)) return;
  const bytes = Buffer.byteLength(JSON.stringify([meta[CLIENT_INFO] ?? null, meta[CLIENT_CAPABILITIES] ?? null]));
  if (bytes > MAX_ENVELOPE_BYTES) {
    throw new ManifoldError("invalid_request", `invalid request: the _meta client info and capabilities are ${bytes} bytes as JSON, more than the ${MAX_ENVELOPE_BYTES} accepted`, { maxBytes: MAX_ENVELOPE_BYTES });
  }
}

/**
 * The trace context of a message: W3C `traceparent`/`tracestate` in `params._meta` (MCP's
 * convention, SEP-414) take the place of the HTTP headers when present, as the HTTP header would.
 */
function agentTraceOf(request: FastifyRequest, params: unknown): Context {
  const meta = isRecord(params) ? params._meta : undefined;
  if (isRecord(meta) && typeof meta.traceparent === "string") {
    const carrier: Record<string, string> = { traceparent: meta.traceparent };
    if (typeof meta.tracestate === "string") carrier.tracestate = meta.tracestate;
    return extractFromHttp(carrier);
  }
  return extractFromHttp(request.headers);
}

/**
 * What goes to an upstream: a call, the item requests an upstream's shared session answers, and
 * the requests about a task (unmetered, one consumer's 100 slow reads ran at once under a bound of
 * 16 calls in flight, 90 reads passed a limit of 3 calls a minute, and 150 `tasks/get` polls of one
 * task made 300 upstream requests under that limit: a completed task's answer is two). Not
 * `tasks/cancel`: a caller past its limit must still be able to stop its own task's work upstream
 * (the request budget bounds it like every request). A 2025 `resources/subscribe` too: its POST is
 * answered when the upstream answers it, and a connection whose answer is under way never gives way
 * at the replica's connection bound (32 of one consumer's, to an upstream answering them in 3 s, held
 * every connection of a replica bounded to 32, and another tenant's was reset).
 */
const UPSTREAM_METHODS: ReadonlySet<unknown> = new Set(["tools/call", "resources/read", "prompts/get", "completion/complete", "resources/subscribe", "tasks/get", "tasks/result", "tasks/update", "tasks/list"]);

/** The requests in a message or a batch that go to an upstream (a 2025-03-26 client may send up to 100 in one POST). */
function upstreamCallsIn(body: unknown): number {
  if (!Array.isArray(body)) return UPSTREAM_METHODS.has((body as { method?: unknown } | undefined)?.method) ? 1 : 0;
  let calls = 0;
  for (const message of body) if (UPSTREAM_METHODS.has((message as { method?: unknown } | undefined)?.method)) calls++;
  return calls;
}

/**
 * The resource subscriptions a listen asks of upstreams besides its `upstreamCalls` (a 2025
 * `resources/subscribe` is one of those): each goes to the upstream's shared session (a listen's URIs, each once, at most 100 by `oversizedListen`).
 * Before, none was metered: a consumer limited to 3 calls a minute sent 20 subscriptions upstream in
 * a few hundred milliseconds in each era (`edgeUnmeteredSubscriptions.e2e`).
 */
function subscriptionsIn(message: unknown): number {
  if ((message as { method?: unknown } | undefined)?.method !== "subscriptions/listen") return 0;
  const uris = (message as { params?: { notifications?: { resourceSubscriptions?: unknown } } }).params?.notifications?.resourceSubscriptions;
  if (!Array.isArray(uris)) return 0;
  return new Set(uris.filter((uri) => typeof uri === "string")).size;
}

function meteredCallsIn(body: unknown, upstreamCalls: number): number {
  if (!Array.isArray(body)) return upstreamCalls + subscriptionsIn(body);
  let subscriptions = 0;
  for (const message of body) subscriptions += subscriptionsIn(message);
  return upstreamCalls + subscriptions;
}

export function admittedCall(
  request: FastifyRequest,
  { era, revision, wellFormed }: Classification,
  target: { virtualServer: string; environment: string },
  admission: { principal: Principal; access: Access },
  upstreamHeaders: ReadonlyMap<string, Record<string, string>> | undefined,
  /** `GATEWAY_AGENT_TRACE=link`: the agent's context is linked from a trace of the gateway's, not continued (`linkedRoot`). */
  linkAgentTrace = false,
): McpCall {
  const body = request.body;
  const message = isRecord(body) ? body : undefined;
  const id = message?.id;
  const upstreamCalls = upstreamCallsIn(body);
  return {
    era,
    revision,
    wellFormed,
    virtualServer: target.virtualServer,
    environment: target.environment,
    principal: admission.principal,
    access: admission.access,
    upstreamHeaders,
    parent: linkAgentTrace ? linkedRoot(agentTraceOf(request, message?.params)) : agentTraceOf(request, message?.params),
    sessionId: era === "legacy" ? header(request, HttpHeader.sessionId) : undefined,
    body,
    method: typeof message?.method === "string" ? message.method : undefined,
    requestId: typeof id === "string" || typeof id === "number" ? id : undefined,
    upstreamCalls,
    meteredCalls: meteredCallsIn(body, upstreamCalls),
    bodyKeys: request.bodyKeys,
    bodyLength: request.bodyLength,
    inbound: inboundTokenOf(request.headers.authorization),
  };
}
