import { MAX_URI_LENGTH, ManifoldError, TASK_EXTENSION, invalidRequestState, isRecord } from "@manifold/contracts";
import { createHash, randomUUID } from "node:crypto";
import { ModernServer } from "./paramsCheckedServers.js";
import { ProtocolError, type Server, createMcpHandler, createRequestStateCodec, inputRequired, type ListToolsResult, type McpHttpHandler, type RequestStateCodec, type ServerContext } from "@modelcontextprotocol/server";
import type { FastifyReply, FastifyRequest } from "fastify";
import { beginCall } from "./callObserver.js";
import { pausedTool, resumeRound, serveToolCall, viewOf, type CallOutcome } from "./callPipeline.js";
import type { CallDeps } from "./callDeps.js";
import { mayAsk } from "@manifold/contracts";
import { allowedInteractions, callerDigest, envelopeCapabilities } from "./interactions.js";
import { callOf, edgeContext, type CancelTarget } from "./callContext.js";
import { sendWebResponse, webRequest } from "./http/webExchange.js";
import { JsonRpcError, errorEnvelope, toJsonRpcError } from "./jsonRpc.js";
import { callIdOf, modernHeadersAgree, type McpCall } from "./mcpCall.js";
import { MAX_KEPT_REQUEST_BYTES } from "./keptRequests.js";
import { parsedResult } from "./mcpServer.js";
import { relayProgress } from "./toolCalls.js";
import { relayLogs, requestLogLevel } from "./callLogs.js";
import { modernCreated, serveModernTasks } from "./modernTasks.js";
import { declaresTasks } from "./tasks.js";
import { ListenStreams, MAX_LISTEN_URIS, listenedUris, type ListenLimits } from "./listenStreams.js";
import type { WatchStream } from "./admittedStreams.js";
import { owesClosingResult, type ListChanges } from "./closingStreams.js";
import { Sealer } from "./sealer.js";
import { exposedUris, offeredCapabilities, type ItemView } from "./itemCatalog.js";
import { deniedKey } from "./catalog.js";
import { serveModernItems } from "./itemHandlers.js";
import { releaseUpstreams, subscribeUpstream } from "./itemRequests.js";
import { mustNotPage } from "./onePage.js";
import { canonicalJson } from "./canonicalJson.js";

interface Served {
  readonly environment: string;
  readonly virtualServer: string;
  readonly deniedItems: ReadonlySet<string>;
  readonly handler: McpHttpHandler;
  /** The exposed URIs its open listen streams follow, each with how many streams follow it (at most `MAX_LISTEN_URIS` a stream). */
  readonly listened: Map<string, number>;
}

/** Errors as the 2.x SDK writes them: its own error class keeps `code` and `data` as given. */
const asProtocolError = (error: unknown) => (error instanceof JsonRpcError ? new ProtocolError(error.code, error.message, error.data) : error);

/**
 * What a 2026-07-28 agent's `requestState` carries (signed, not encrypted: nothing secret): the
 * held call's resume subject, the exposed tool it belongs to and a digest of its arguments. It is
 * bound to the caller, the virtual server and the environment, so it verifies on any replica for
 * them only.
 */
interface RoundState {
  /** The resume subject, sealed: it names the upstream and the connector replica, which are not the caller's to read. */
  r: string;
  t: string;
  /**
   * The call's arguments, digested: a retry repeats them. The held call runs with the first
   * request's; a retry with others once completed the call under a record naming those others.
   */
  a: string;
  /** The id the connector holds the call under, sealed: a retry's closed stream cancels it (absent in states from before it was kept). */
  c?: string;
  /**
   * The tool the call was made on (`pausedTool`), sealed like the subject: a retry resumes it only
   * while `t` still reaches it (absent in states from before it was kept: those are refused).
   */
  i?: string;
}

/** A retry that sends the same arguments in another key order matches. */
const argumentsDigest = (args: unknown): string => createHash("sha256").update(canonicalJson(args ?? {})).digest("base64url").slice(0, 22);

/** The binding of a round's state: who may present it, where. */
const bindingOf = (ctx: ServerContext): string => {
  const { call } = callOf(ctx.http?.authInfo);
  return `${call.principal.id}\0${call.virtualServer}\0${call.environment}`;
};

/** Why a listen request is too large to keep for a stream's life, if it is. */
function oversizedListen(body: unknown): { what: string; data: Record<string, number> } | undefined {
  const wanted = listenedUris(body);
  const bytes = Buffer.byteLength(JSON.stringify(body, (key, value: unknown) => (key === "resourceSubscriptions" ? undefined : value)));
  if (bytes > MAX_KEPT_REQUEST_BYTES) return { what: `the subscriptions/listen request is ${bytes} bytes besides its resource URIs, more than the ${MAX_KEPT_REQUEST_BYTES} accepted`, data: { maxBytes: MAX_KEPT_REQUEST_BYTES } };
  if (!Array.isArray(wanted)) return undefined;
  if (wanted.length > MAX_LISTEN_URIS) return { what: `the subscriptions/listen request names ${wanted.length} resources, more than the ${MAX_LISTEN_URIS} a stream follows`, data: { maxItems: MAX_LISTEN_URIS } };
  if (wanted.some((uri) => typeof uri === "string" && uri.length > MAX_URI_LENGTH)) return { what: `a resource URI of the subscriptions/listen request is longer than ${MAX_URI_LENGTH} characters`, data: { maxLength: MAX_URI_LENGTH } };
  return undefined;
}

/**
 * The 2026-07-28 side of every virtual server: the 2.x SDK's strict modern handler
 * (`createMcpHandler`, `legacy: 'reject'`: 2025 traffic never reaches it, it goes to the sessions),
 * one per virtual server, environment and set of denied prompts and resources (a listen stream
 * hears only of what its caller may see), with its own in-process event bus for
 * `subscriptions/listen`. It owns the modern wire rules (envelope, Mcp-Method/Mcp-Name checks,
 * supported revisions, server/discover, listen streams); a fresh low-level server per request
 * reads the call object the edge built. Every replica follows the registry, so each replica's
 * bus hears every change.
 */
export class ModernServers {
  /** Per environment, virtual server and denied item set: a listen stream only hears of what its caller may see. */
  readonly #handlers = new Map<string, Served>();
  /**
   * The SDK's own `server/discover` result, per view of the items a caller may see (built once per
   * change and denied set, and all the answer depends on): the SDK builds a server for each request
   * (~2 ms here), and the fast path answers the next ones with these bytes.
   */
  readonly #discoveries = new WeakMap<ItemView, Buffer>();
  readonly #deps: CallDeps;
  readonly #version: string;
  readonly #listTtlMs: number;
  readonly #rounds: RequestStateCodec<RoundState>;
  readonly #subjects: Sealer;

  /** `requestStateKey`: the HMAC key every replica shares (`GATEWAY_REQUEST_STATE_KEY`), so a retry may land on any of them. */
  readonly #listens: ListenStreams;
  /** Keeps a listen stream open only while its request would be admitted (`AdmittedStreams`). */
  readonly #watchStream: WatchStream;

  constructor(
    deps: CallDeps,
    version: string,
    listTtlMs: number,
    requestStateKey: Uint8Array,
    roundTtlS: number,
    listens: ListenLimits,
    watchStream: WatchStream,
  ) {
    this.#listens = new ListenStreams(listens);
    this.#watchStream = watchStream;
    this.#deps = deps;
    this.#version = version;
    this.#listTtlMs = listTtlMs;
    this.#rounds = createRequestStateCodec<RoundState>({ key: requestStateKey, ttlSeconds: roundTtlS, bind: bindingOf });
    this.#subjects = new Sealer(requestStateKey, "manifold round subject v1", "mr1.");
  }

  /** Serves one modern request (`cancels` names the call the seam cancels when a tools/call's stream closes). */
  async handle(call: McpCall, cancels: CancelTarget | undefined, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    // A listen the SDK will refuse (headers that disagree with the body or are missing, a version it
    // does not serve) opens nothing: before, its resources were subscribed upstream first.
    const listening = call.method === "subscriptions/listen" && modernHeadersAgree(call, request.headers);
    if (listening) {
      // A stream keeps its request for its life, as a 2025 session keeps its initialize: bounded by
      // size as well as by count (100 streams of 900 KB requests kept 179 MiB of one replica's heap).
      const oversized = oversizedListen(call.body);
      if (oversized) {
        const refusal = errorEnvelope("invalid_request", `${oversized.what}; a stream keeps its request for its life`, "modern", call.requestId ?? null);
        Object.assign(refusal.error.data, oversized.data);
        return reply.code(400).type("application/json").send(refusal);
      }
      // SEP-2663: task notifications asked for without the extension are -32021. With it, none are
      // promised (a server MAY send them; Manifold does not): the SDK's acknowledgement lists none.
      const wanted = (call.body as { params?: { notifications?: { taskIds?: unknown } } }).params?.notifications?.taskIds;
      if (wanted !== undefined && !declaresTasks(envelopeCapabilities(call))) {
        const refusal = errorEnvelope("missing_client_capability", `task notifications need the ${TASK_EXTENSION} extension`, "modern", call.requestId ?? null);
        refusal.error.data.requiredCapabilities = { extensions: { [TASK_EXTENSION]: {} } };
        return reply.code(400).type("application/json").send(refusal);
      }
      this.#listens.hold(call.principal, reply.raw);
      // The SDK answers a listen without an id (-32600): only one with an id is a stream to end.
      if (call.requestId !== undefined) owesClosingResult(reply.raw, call.requestId, { name: `manifold-${call.virtualServer}`, version: this.#version }, this.#honoured(call));
      this.#watchStream(call, request, reply.raw);
    }
    // Listened for before anything is awaited: a client gone meanwhile still aborts the request.
    const closed = new AbortController();
    reply.raw.once("close", () => closed.abort());
    if (reply.raw.destroyed) closed.abort();
    // A listen stream's resources: the SDK acknowledges what it is given, so it is given only what will be heard of.
    const body = listening ? await this.#subscribeUpstreams(call, closed.signal) : call.body;
    if (listening) this.#follow(call, listenedUris(body), closed.signal);
    // What a discovery is remembered under is taken before the SDK answers: a change meanwhile makes a new view, never an old answer under it.
    const discovering = call.method === "server/discover" ? this.#itemsOf(call) : undefined;
    const response = await this.#handler(call).fetch(webRequest(request, closed.signal), {
      parsedBody: body,
      authInfo: edgeContext(call, cancels),
    });
    if (discovering) return sendWebResponse(reply, await this.#remember(discovering, response));
    return sendWebResponse(reply, response, listening);
  }

  /** The `server/discover` result the SDK gave for what this caller sees, once it has answered one. */
  discovery(call: McpCall): Buffer | undefined {
    const items = this.#itemsOf(call);
    return items === undefined ? undefined : this.#discoveries.get(items);
  }

  /** The list changes a listen request asks for that its stream is sent (the SDK's `honoredSubset` against the capabilities served). */
  #honoured(call: McpCall): ListChanges {
    const wanted = (call.body as { params?: { notifications?: ListChanges } }).params?.notifications ?? {};
    const items = this.#itemsOf(call)?.capabilities as { prompts?: { listChanged?: boolean }; resources?: { listChanged?: boolean } } | undefined;
    return {
      toolsListChanged: wanted.toolsListChanged === true,
      promptsListChanged: wanted.promptsListChanged === true && items?.prompts?.listChanged === true,
      resourcesListChanged: wanted.resourcesListChanged === true && items?.resources?.listChanged === true,
    };
  }

  /** What the caller may see of the virtual server's items: built once per change and denied set. */
  #itemsOf(call: McpCall): ItemView | undefined {
    return this.#deps.catalog.view(call.virtualServer, call.environment)?.itemsFor(call.access.deniedItems);
  }

  /** Keeps the result of a `server/discover` the SDK answered (a JSON result, not an error); returns the answer as it was. */
  async #remember(items: ItemView, response: Response): Promise<Response> {
    if (response.status !== 200 || !response.headers.get("content-type")?.startsWith("application/json")) return response;
    const text = await response.text();
    try {
      const { result, error } = JSON.parse(text) as { result?: unknown; error?: unknown };
      if (error === undefined && isRecord(result)) this.#discoveries.set(items, Buffer.from(JSON.stringify(result)));
    } catch {
      // Not JSON after all: passed on as it came.
    }
    return new Response(text, { status: response.status, headers: response.headers });
  }

  /** Tells the virtual server's open listen streams (every environment) that its tool list changed. */
  toolsChanged(virtualServer: string): void {
    for (const served of this.#handlers.values()) if (served.virtualServer === virtualServer) served.handler.notify.toolsChanged();
  }

  /** Tells the virtual server's listen streams that its prompts and resources changed. */
  itemsChanged(virtualServer: string): void {
    for (const { virtualServer: name, handler } of this.#handlers.values()) {
      if (name !== virtualServer) continue;
      handler.notify.promptsChanged();
      handler.notify.resourcesChanged();
    }
  }

  /** Ends the listen streams of a consumer deleted meanwhile. */
  endConsumer(consumer: string): void {
    this.#listens.endConsumer(consumer);
  }


  /** Ends the virtual server's open streams (it was deleted). */
  async close(virtualServer?: string): Promise<void> {
    const closing = [...this.#handlers].filter(([, served]) => virtualServer === undefined || served.virtualServer === virtualServer);
    for (const [key] of closing) this.#handlers.delete(key);
    await Promise.all(closing.map(([, served]) => served.handler.close()));
  }

  /** What the virtual server exposes besides tools, as this request's view has it (none when it is gone: tools/list reports that). */
  #itemCapabilities(authInfo: Parameters<typeof callOf>[0]) {
    return offeredCapabilities(this.#itemsOf(callOf(authInfo).call), this.#deps.health);
  }

  /**
   * Tells the listen streams subscribed to an upstream resource that it changed, under the URI
   * each virtual server exposes it by (a stream's `resourceSubscriptions` name exposed URIs).
   */
  resourceUpdated(upstream: string, uri: string): void {
    for (const { environment, virtualServer, deniedItems, handler } of this.#handlers.values()) {
      const items = this.#deps.catalog.view(virtualServer, environment)?.itemsFor(deniedItems);
      if (!items) continue;
      for (const exposed of exposedUris(items, upstream, uri)) handler.notify.resourceUpdated(exposed);
    }
  }

  /**
   * Tells each open listen stream that each resource it follows changed, where its caller's view
   * still exposes it: `ResourceUpdates` asks once the bus is back, since updates published while it
   * was away reached no stream here. One notice per handler and URI (the SDK's bus hands it to each
   * stream that follows the URI).
   */
  retellUpdates(): void {
    for (const { environment, virtualServer, deniedItems, handler, listened } of this.#handlers.values()) {
      const items = this.#deps.catalog.view(virtualServer, environment)?.itemsFor(deniedItems);
      if (items) for (const uri of listened.keys()) if (items.resolveUri(uri)) handler.notify.resourceUpdated(uri);
    }
  }

  /** Counts the URIs a listen stream was given (after `#subscribeUpstreams`) on its handler until the stream closes. */
  #follow(call: McpCall, uris: unknown, closed: AbortSignal): void {
    // Anything but a list of strings the SDK refuses: no stream follows it.
    if (closed.aborted || !Array.isArray(uris) || uris.length === 0 || !uris.every((uri) => typeof uri === "string")) return;
    const { listened } = this.#served(call);
    for (const uri of uris) listened.set(uri, (listened.get(uri) ?? 0) + 1);
    closed.addEventListener("abort", () => {
      for (const uri of uris) {
        const left = (listened.get(uri) ?? 1) - 1;
        if (left > 0) listened.set(uri, left);
        else listened.delete(uri);
      }
    }, { once: true });
  }

  /**
   * The upstream subscriptions a listen request asks for: each exposed URI in
   * `notifications.resourceSubscriptions` that the virtual server serves to this caller is
   * subscribed at its upstream (until the stream closes), at most 100 per stream (`oversizedListen`),
   * before the SDK opens the stream. Returns the request as the SDK is to see it: with only the
   * URIs subscribed, which is what it acknowledges (a denied, unknown or unreachable one is not).
   */
  async #subscribeUpstreams(call: McpCall, closed: AbortSignal): Promise<unknown> {
    const body = call.body as { params?: { notifications?: { resourceSubscriptions?: unknown } } };
    const notifications = body.params?.notifications;
    const wanted = listenedUris(body);
    // Anything but a list of strings is the SDK's to refuse (-32602), as it is.
    if (!Array.isArray(wanted) || !wanted.every((uri): uri is string => typeof uri === "string")) return body;
    const items = this.#deps.catalog.view(call.virtualServer, call.environment)?.itemsFor(call.access.deniedItems);
    // Each URI once: a list of one URI a hundred times was a hundred upstream requests.
    const uris = [...new Set(wanted)];
    const stream = randomUUID();
    const subscribed = items
      ? await Promise.all(uris.map((uri) => subscribeUpstream(this.#deps, call, items, uri, stream).then(() => uri, () => undefined)))
      : [];
    // Held upstream while the stream is open: before, for the connector session's life, whoever held it.
    // Kept for the stream's life, so only the URIs the virtual server serves: the whole list (up to
    // 400 KB of URIs never subscribed to) held 7.8-10.1 MiB over 20 streams (access.e2e).
    const served = items ? uris.filter((uri) => items.resolveUri(uri) !== undefined) : [];
    const release = () => items && releaseUpstreams(this.#deps, call, items, served, stream);
    if (closed.aborted) release();
    else closed.addEventListener("abort", release, { once: true });
    // In place: the request (its body) lives as long as the stream, and a copy left the original's
    // 400 KB of URIs never subscribed to held with it (100 streams of one consumer: +40 MiB).
    (notifications as { resourceSubscriptions: string[] }).resourceSubscriptions = subscribed.filter((uri) => uri !== undefined);
    return body;
  }

  #handler(call: McpCall): McpHttpHandler {
    return this.#served(call).handler;
  }

  #served(call: McpCall): Served {
    const { virtualServer, environment, access } = call;
    const deniedItems = access.deniedItems;
    const key = `${environment}\n${virtualServer}\n${deniedItems.size === 0 ? "" : deniedKey(deniedItems)}`;
    let served = this.#handlers.get(key);
    if (!served) {
      // The SDK's own bound on listen streams (per handler, shared by its callers) never binds before `ListenStreams`.
      const handler = createMcpHandler(({ authInfo }) => this.#server(virtualServer, authInfo), { legacy: "reject", maxSubscriptions: this.#listens.limits.total });
      this.#handlers.set(key, (served = { environment, virtualServer, deniedItems, handler, listened: new Map() }));
    }
    return served;
  }

  #server(virtualServer: string, authInfo: Parameters<typeof callOf>[0]): Server {
    const deps = this.#deps;
    const items = this.#itemCapabilities(authInfo);
    const server = new ModernServer(
      { name: `manifold-${virtualServer}`, version: this.#version },
      // A forged, tampered, expired or another caller's requestState is refused before the handler runs.
      // The tasks extension (SEP-2663): a tool whose pin requires tasks answers a declaring agent with one.
      { capabilities: { tools: { listChanged: true }, ...items, logging: {}, extensions: { [TASK_EXTENSION]: {} } }, requestState: { verify: (state, ctx) => this.#rounds.verify(state, ctx) } },
    );
    serveModernItems(server, deps, items, authInfo, asProtocolError);
    server.setRequestHandler("tools/list", (request) => {
      const { call } = callOf(authInfo);
      try {
        mustNotPage(request.params);
        const view = viewOf(deps, call);
        // The catalog holds the definitions as the 1.x types describe them; the wire shape is the same.
        const tools = view.visible(call.access.denied).tools as unknown as ListToolsResult["tools"];
        return { tools: [...tools], ttlMs: this.#listTtlMs, cacheScope: view.cacheScope };
      } catch (error) {
        throw asProtocolError(error instanceof ManifoldError ? toJsonRpcError(error, "modern") : error);
      }
    });
    server.setRequestHandler("tools/call", async (request, ctx) => {
      const { call, cancels } = callOf(authInfo);
      // The tool's upstream names where its connectors may send the call's notifications; a name that reaches no tool is refused below.
      const upstream = deps.catalog.view(call.virtualServer, call.environment)?.routes.get(request.params.name)?.upstream;
      const token = request.params._meta?.progressToken;
      const progress = token === undefined || upstream === undefined ? undefined : relayProgress(deps.nc, upstream, token, (n) => ctx.mcpReq.notify(n));
      // Only a request that names a level gets log messages (server/utilities/logging, "Per-request log level");
      // the SDK takes the envelope's keys out of the handler's params: the request as received names it.
      const level = requestLogLevel((call.body as { params?: { _meta?: unknown } }).params?._meta);
      const logs = level === undefined || upstream === undefined ? undefined : relayLogs(deps.nc, upstream, (n) => ctx.mcpReq.notify(n));
      try {
        viewOf(deps, call);
        const declared = envelopeCapabilities(call);
        const capabilities = allowedInteractions(deps.catalog, call, declared);
        const caller = callerDigest(call.principal);
        const state = ctx.mcpReq.requestState<RoundState>();
        let outcome: CallOutcome;
        /** The id the connector holds the call under: this request's, or the first request's for a retry. */
        let held: string | undefined;
        if (state !== undefined) {
          // A retry: the answers go to the held call, on whichever connector replica holds it.
          if (state.t !== request.params.name) throw invalidRequestState("the requestState belongs to another tool's call");
          if (state.a !== argumentsDigest(request.params.arguments)) throw invalidRequestState("a retry repeats its call's arguments, and these are not the ones the call was made with");
          // The retry is a request of its own: audited on its own, with the call's arguments (checked above to be the call's).
          const facts = beginCall(call.virtualServer, call.environment, call.principal, state.t);
          facts.argumentsValue = request.params.arguments;
          facts.argumentBytes = Buffer.byteLength(JSON.stringify(request.params.arguments ?? {}));
          const subject = this.#subjects.open(state.r, bindingOf(ctx));
          const tool = this.#subjects.open(state.i, bindingOf(ctx));
          if (subject === undefined || tool === undefined) throw invalidRequestState("the requestState does not name a round of this caller's");
          // Closing this retry's stream cancels the held call, and the call is the caller's running one meanwhile.
          held = state.c === undefined ? undefined : this.#subjects.open(state.c, bindingOf(ctx));
          if (held !== undefined && cancels) cancels.id = held;
          // The work after the answers reports on this request's own token (`progress`, `logs`).
          const notify = { progress: progress?.getSubject(), log: logs?.getSubject() };
          outcome = await resumeRound(deps, call, state.t, tool, subject, ctx.mcpReq.inputResponses ?? {}, caller, facts, { callId: held, notify });
        } else {
          held = cancels?.id ?? callIdOf(call, ctx.mcpReq.id);
          outcome = await serveToolCall(deps, {
            call,
            callId: held,
            requestId: ctx.mcpReq.id,
            params: request.params,
            ...(progress ? { progressSubject: progress.getSubject() } : {}),
            ...(logs ? { log: { subject: logs.getSubject(), level: level! } } : {}),
            interactions: capabilities,
            tasksDeclared: declaresTasks(declared),
          });
        }
        if (typeof outcome === "string") return parsedResult(outcome, "modern");
        if ("created" in outcome) return modernCreated(outcome.created) as never;
        // This request ends here, paused for its agent.
        outcome.facts.paused = true;
        deps.observer.recordSoon(outcome.facts);
        // Only what this agent may be asked is sent (the connector refuses the rest upstream).
        const inputRequests = Object.fromEntries(Object.entries(outcome.input.inputRequests).filter(([, asked]) => mayAsk(capabilities, asked)));
        const requestState = await this.#rounds.mint(
          { r: this.#subjects.seal(outcome.input.resume, bindingOf(ctx)), i: this.#subjects.seal(pausedTool(outcome.route), bindingOf(ctx)), t: request.params.name, a: argumentsDigest(request.params.arguments), ...(held === undefined ? {} : { c: this.#subjects.seal(held, bindingOf(ctx)) }) },
          ctx,
        );
        return inputRequired({ inputRequests, requestState } as Parameters<typeof inputRequired>[0]) as never;
      } catch (error) {
        throw asProtocolError(error instanceof ManifoldError ? toJsonRpcError(error, "modern") : error);
      } finally {
        progress?.unsubscribe();
        logs?.unsubscribe();
      }
    });
    serveModernTasks(server, deps, () => callOf(authInfo).call, asProtocolError);
    return server;
  }
}

