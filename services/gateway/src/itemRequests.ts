import { createHash, randomUUID } from "node:crypto";
import { BusHeader, JsonLimits, ManifoldError, jsonTextTooDeep, RESULT_TOO_DEEP, Subjects, type SubscriptionReleased, type UpstreamRequestMethod, isRecord } from "@manifold/contracts";
import { busRequest } from "@manifold/bus";
import { Attr, SpanKind, traced } from "@manifold/telemetry";
import type { CallDeps } from "./callDeps.js";
import { callerDigest } from "./interactions.js";
import type { ItemRoute, ItemView } from "./itemCatalog.js";
import type { McpCall } from "./mcpCall.js";
import { mustNotPage } from "./onePage.js";
import { exposeResultUris } from "./resultUris.js";
import { consentResult } from "./vault/consentAnswer.js";
import { obtainedFor } from "./vault/delegatedCredentials.js";

type Json = Record<string, unknown>;

/**
 * The request's params without `_meta` (the connector's own client speaks its own era to the
 * upstream), nor a 2026-07-28 retry's `inputResponses` and `requestState`: they answer Manifold's
 * consent request, not the upstream.
 */
function paramsOf(params: unknown): Json {
  if (!isRecord(params)) throw new ManifoldError("invalid_arguments", "invalid params: an object is required");
  const { _meta: _, inputResponses: _answers, requestState: _state, ...rest } = params;
  return rest;
}
const stringParam = (params: Json, key: string, max: number): string => {
  const value = params[key];
  if (typeof value !== "string" || value.length === 0 || value.length > max) throw new ManifoldError("invalid_arguments", `invalid params: '${key}' must be a string of 1-${max} characters`);
  return value;
};
const unknownPrompt = (call: McpCall, name: string) =>
  new ManifoldError("unknown_prompt", `unknown prompt '${name}': virtual server '${call.virtualServer}' exposes no prompt of that name`, { prompt: name });
export const resourceNotFound = (call: McpCall, uri: string) =>
  new ManifoldError("resource_not_found", `Resource not found: virtual server '${call.virtualServer}' exposes no resource '${uri.slice(0, 256)}'`, { uri: uri.slice(0, 4_096) });

/**
 * Forwards one request to the connector owning the route and returns its result with every
 * resource URI exposed (`<upstream>+<uri>`). The result is the upstream's: measured before parsing.
 */
async function forward(deps: CallDeps, call: McpCall, route: ItemRoute, method: UpstreamRequestMethod, params: Json, subscriber?: string): Promise<Json> {
  // A prompt, read or completion is the caller's, as its calls are: a per-user upstream's with its own
  // token (or a consent request), another's with the caller's pass-through headers for it (checked at
  // the edge as a call's are), on the caller's own session, never on the shared session's credential.
  // Before, a pass-through upstream's went on the shared session, with the registration's service
  // credential: a caller whose own token the upstream refuses read as the service account. Subscriptions stay shared.
  // Asked before the span, as a tool call does: a consent request's message holds the connect link,
  // which is the consumer's alone, and inside the span it became the span's status message.
  let own: Record<string, string> | undefined;
  try {
    own = method === "resources/subscribe" ? undefined : await deps.delegated.headersFor(route.upstream, call, call.upstreamHeaders?.get(route.upstream));
  } catch (error) {
    // A 2026-07-28 client that takes URL elicitation is asked for consent in a result, as on tools/call;
    // MRTR allows it on prompts/get and resources/read only (basic/patterns/mrtr, "Supported Requests").
    const consent = method === "prompts/get" || method === "resources/read" ? consentResult(call, error) : undefined;
    if (consent === undefined) throw error;
    return JSON.parse(consent) as Json;
  }
  return traced(`${method} ${route.upstream}`, SpanKind.SERVER, { [Attr.mcpMethod]: method, [Attr.upstream]: route.upstream }, async () => {
    // Who asks: the connector shares the upstream's slots between callers by it, and holds a subscription in the caller's share.
    // Before, every caller's reads were one caller there: one tenant's 200 slow reads queued ahead of everyone's.
    const headers: Record<string, string> = { [BusHeader.caller]: callerDigest(call.principal) };
    if (own) headers[BusHeader.upstreamHeaders] = JSON.stringify(own);
    if (subscriber) headers[BusHeader.subscriber] = subscriber;
    const resource = obtainedFor(own);
    if (resource) headers[BusHeader.upstreamResource] = resource;
    // One of the caller's running calls until the connector answers, as a tool call is: a client that
    // goes away does not stop the read upstream (200 abandoned slow reads all ran, under a bound of 16).
    // Not a subscription: it keeps nothing open once answered (the upstream's slots at the connector bound those under way), and is bounded by the caller's share (a listen of 100 URIs is 100 of them).
    const running = method === "resources/subscribe" ? undefined : deps.inFlight.running(call.principal, `${method} ${randomUUID()}`);
    const reply = await busRequest(deps.nc, route.subject, JSON.stringify({ method, params }), { timeoutMs: route.timeoutMs, target: `upstream '${route.upstream}'`, headers }).finally(() => running?.());
    // Reads admitted together answer together, as calls do (`serveToolCall`): each answer waits for
    // room among its caller's unread bytes. Checked at admission only, one caller's 16 reads of 4 MB
    // answered together were all written to a client that did not read them (61 MiB held).
    if (running) deps.inFlight.mustHaveRoom(call.principal);
    const text = reply.string();
    if (jsonTextTooDeep(text, JsonLimits.resultDepth)) {
      throw new ManifoldError("upstream_error", `the result nests deeper than ${JsonLimits.resultDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth: JsonLimits.resultDepth });
    }
    // Who may reuse an answer, and for how long, is the gateway's to say: callers see what their
    // grants allow, which the upstream does not know, and a grant or selection may change. The
    // upstream's `cacheScope` and `ttlMs` are dropped; the SDK answers its defaults (`private`, 0).
    const { cacheScope: _scope, ttlMs: _ttl, ...result } = JSON.parse(exposeResultUris(text, route.uriPrefix)) as Json;
    return result;
  }, call.parent);
}

/** What both eras' SDK servers answer for prompts, resources and completions of one virtual server. */
export const itemLists = {
  prompts: (items: ItemView, params: unknown) => {
    mustNotPage(params);
    return { prompts: [...items.promptList] };
  },
  resources: (items: ItemView, params: unknown) => {
    mustNotPage(params);
    return { resources: [...items.resourceList] };
  },
  templates: (items: ItemView, params: unknown) => {
    mustNotPage(params);
    return { resourceTemplates: [...items.templateList] };
  },
};

/** prompts/get: routed by exposed name, sent under the upstream's own name. */
export function getPrompt(deps: CallDeps, call: McpCall, items: ItemView, raw: unknown): Promise<Json> {
  const params = paramsOf(raw);
  const name = stringParam(params, "name", 256);
  const route = items.prompts.get(name);
  if (!route) throw unknownPrompt(call, name);
  return forward(deps, call, route, "prompts/get", { ...params, name: route.original });
}

/** resources/read: an exposed URI that is a selected resource or expands a selected template of its upstream. */
export function readResource(deps: CallDeps, call: McpCall, items: ItemView, raw: unknown): Promise<Json> {
  const params = paramsOf(raw);
  const uri = stringParam(params, "uri", 4_096);
  const route = items.resolveUri(uri);
  if (!route) throw resourceNotFound(call, uri);
  return forward(deps, call, route, "resources/read", { ...params, uri: route.original });
}

/** completion/complete: for a prompt (exposed name) or a resource template (exposed URI template), sent under the upstream's own. */
export function complete(deps: CallDeps, call: McpCall, items: ItemView, raw: unknown): Promise<Json> {
  const params = paramsOf(raw);
  const ref = params.ref;
  if (!isRecord(ref)) throw new ManifoldError("invalid_arguments", "invalid params: 'ref' must be an object");
  if (ref.type === "ref/prompt") {
    const name = stringParam(ref, "name", 256);
    const route = items.prompts.get(name);
    if (!route) throw unknownPrompt(call, name);
    return forward(deps, call, route, "completion/complete", { ...params, ref: { ...ref, name: route.original } });
  }
  if (ref.type === "ref/resource") {
    const uri = stringParam(ref, "uri", 4_096);
    const route = items.templates.get(uri) ?? items.resolveUri(uri);
    if (!route) throw resourceNotFound(call, uri);
    return forward(deps, call, route, "completion/complete", { ...params, ref: { ...ref, uri: route.original } });
  }
  throw new ManifoldError("invalid_arguments", "invalid params: 'ref.type' must be 'ref/prompt' or 'ref/resource'");
}

/**
 * Asks the upstream owning an exposed URI for its updates; resolves with the route. The connector
 * holds it in the caller's share of the upstream's subscriptions (`SubscriptionShares`), so it
 * learns who asks, and for which listen stream (`subscriber`, released by `releaseUpstreams`).
 */
export async function subscribeUpstream(deps: CallDeps, call: McpCall, items: ItemView, uri: unknown, subscriber?: string): Promise<ItemRoute> {
  const exposed = typeof uri === "string" ? uri : "";
  const route = items.resolveUri(exposed);
  if (!route) throw resourceNotFound(call, exposed);
  // Refused here when its upstream's session declared no `resources.subscribe`: asked anyway, the
  // upstream answered -32601 and the agent got -32012 `upstream_error`.
  if (deps.health.subscribes(route.upstream) === false) throw new ManifoldError("subscribe_unsupported", `the resource '${exposed}' cannot be subscribed to: its upstream does not support resource subscriptions`);
  await forward(deps, call, route, "resources/subscribe", { uri: route.original }, subscriber);
  return route;
}

/**
 * The holder a 2025 session's subscriptions are held under at the connectors: the same on every
 * gateway replica that serves the session, and not its id (which lets a request into the session).
 */
export const sessionHolder = (sessionId: string) => createHash("sha256").update(`manifold-session\0${sessionId}`).digest("base64url").slice(0, 22);

const NONE_DENIED: ReadonlySet<string> = new Set();
/** Every item the virtual server serves, whatever the caller's access says now: what it held is let go even where denied since. */
export const allItems = (deps: CallDeps, call: McpCall) => deps.catalog.view(call.virtualServer, call.environment)?.itemsFor(NONE_DENIED);

/**
 * A closed listen stream or an ended 2025 session (`subscriber`) holds its exposed URIs no more: each upstream's connectors
 * are told, and let go upstream of what no other stream or caller holds. A URI whose subscription
 * failed is told too (a connector that held it anyway lets go; one that did not ignores it).
 */
export function releaseUpstreams(deps: CallDeps, call: McpCall, items: ItemView, uris: readonly string[], subscriber: string): void {
  const byUpstream = new Map<string, string[]>();
  for (const uri of uris) {
    const route = items.resolveUri(uri);
    if (!route) continue;
    const originals = byUpstream.get(route.upstream);
    if (originals) originals.push(route.original);
    else byUpstream.set(route.upstream, [route.original]);
  }
  const caller = callerDigest(call.principal);
  for (const [upstream, originals] of byUpstream) {
    const released: SubscriptionReleased = { caller, holder: subscriber, uris: originals };
    if (!deps.nc.isClosed()) deps.nc.publish(Subjects.subscriptionReleased(upstream), JSON.stringify(released));
  }
}
