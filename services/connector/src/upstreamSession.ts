import { ManifoldError, TASK_EXTENSION, TaskMode, type InputRequest, type InteractionCapabilities, type ListReply, type TaskRequest, type UpstreamProtocol, type UpstreamRequestMethod } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { Client, LOG_LEVEL_META_KEY, type McpSubscription, type Progress, StreamableHTTPClientTransport, type Tool } from "@modelcontextprotocol/client";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/client/validators/ajv";
import type { Pool } from "undici";
import { z } from "zod";
import type { Cancellation } from "./cancellation.js";
import { DirectCaller } from "./directCaller.js";
import type { Ask } from "./heldCall.js";
import type { CallLog } from "./callLog.js";
import { CLIENT_INFO, neutralResult, paramHeadersOf, type ParamHeader } from "./modernRequest.js";
import { legacyCallAnswer, modernTaskRequest } from "./modernTasks.js";
import { isSessionNotFound } from "./sessionExpiry.js";
import { keepNotificationsFirst } from "./inboundOrder.js";
import type { OpenedTransport } from "./transports.js";
import { listAllItems, listAllTools } from "./upstreamListing.js";
import { mapUpstreamError, mustNotNestTooDeep, safeReason } from "./upstreamErrors.js";

export type SessionState = "connecting" | "connected" | "disconnected" | "closed";

export interface CallOptions {
  /** The time this attempt may take. */
  timeoutMs: number;
  /** The call's whole budget: progress may extend an attempt up to it, never past it. */
  budget: number;
  cancellation?: Cancellation | undefined;
  /** When set, the upstream is asked for progress and each notification is handed here. */
  onprogress?: ((progress: Progress) => void) | undefined;
  /** When set, the upstream's server-to-client requests during the call are relayed to its agent. */
  interaction?: Interaction | undefined;
  /** When set, the upstream's log messages during the call are relayed to its caller. */
  log?: CallLog | undefined;
  /** How the call asks for a task (`TaskMode`); absent: it takes none. */
  task?: TaskMode | undefined;
  /** The most a direct call's answer may hold (a bus message's size). */
  maxResultBytes?: number | undefined;
}

/** A call whose agent may be asked: what it may be asked, and how. */
export interface Interaction {
  readonly ask: Ask;
  readonly capabilities: InteractionCapabilities;
}

/**
 * What the connector's client declares to upstreams: every kind of server-to-client request a
 * virtual server may allow, so the upstream offers its tools that need them; each request is then
 * relayed only for a call whose agent declared it and whose virtual server allows it.
 */
const RELAYED_CAPABILITIES = { elicitation: { form: {}, url: {} }, sampling: {}, roots: {} };
const RELAYED_METHODS = ["elicitation/create", "sampling/createMessage", "roots/list"] as const;
/** Results passed on as the upstream wrote them (the gateway checks their size and depth, and maps task ids). */
const ANY_RESULT = z.looseObject({});

export interface SessionOptions {
  /** The era the upstream's registration pins, or `auto` to probe. */
  protocol: UpstreamProtocol;
  /** How long the era probe (`server/discover`) may take before a stdio upstream counts as 2025-era. */
  probeTimeoutMs: number;
  /** Keep-alive connections for direct calls (Streamable HTTP upstreams only). */
  pool?: Pool | undefined;
  /**
   * Per tool, the parameters a modern upstream wants mirrored into `Mcp-Param-*` headers: shared
   * by every session of the upstream, refreshed by whichever lists its tools (the shared one).
   */
  paramHeaders?: Map<string, readonly ParamHeader[]> | undefined;
  /** Follow the upstream's tool-list changes (the shared session does; callers' own sessions need not). */
  followChanges?: boolean;
  onStateChange?: ((state: SessionState, reason?: string) => void) | undefined;
}

/** One connection to the upstream, in the era it negotiated. */
interface Connection {
  readonly client: Client;
  /** The negotiated revision: `2026-07-28` (modern, no session) or a 2025 one (an `initialize`d session). */
  readonly protocolVersion: string;
  readonly modern: boolean;
  /** tools/call straight over HTTP: the hot path, for Streamable HTTP upstreams of either era. */
  readonly direct: DirectCaller | undefined;
  subscription?: McpSubscription;
  /** A modern upstream's resource subscriptions: one `subscriptions/listen` stream per URI. */
  resourceStreams?: Map<string, McpSubscription>;
}

/** Most resources one modern connection follows (each holds a listen stream). */
const MAX_RESOURCE_STREAMS = 1_000;

const MAX_BACKOFF_MS = 30_000;
/** How long ending a session at the upstream may take before the connection is just closed. */
const TERMINATE_TIMEOUT_MS = 1_000;
const LEGACY = "2025";
/** Each SDK client otherwise builds its own Ajv instance; one per process serves every session. */
const sharedValidator = new AjvJsonSchemaValidator();

/**
 * The connector's one seam to an upstream: connect (probing the era), list tools, call a tool
 * with progress and cancellation, state, era, close. It uses the 2.x SDK client, which probes
 * with `server/discover` and falls back to `initialize`, for both eras; tools/call on Streamable
 * HTTP goes through the direct caller, an implementation detail of the hot path.
 *
 * A 2025-era upstream holds a session: it is reconnected with exponential backoff when it drops,
 * and renewed at once when the upstream forgets it. A 2026-07-28 upstream holds none: a failed
 * call loses nothing and the next one simply goes out again; list changes are followed with
 * `subscriptions/listen`, re-opened when the stream drops.
 */
export class UpstreamSession {
  readonly name: string;
  readonly #openTransport: (inPlaceProbe: boolean) => Promise<OpenedTransport>;
  /**
   * The era to connect in without probing: `2025`, a modern revision, or unknown (probe). Pinned
   * by the registration, or learned from the last successful probe and forgotten when a
   * connection in it fails, so a changed upstream is probed again.
   */
  #era: string | undefined;
  readonly #pinned: boolean;
  readonly #options: SessionOptions;
  readonly #logger: Logger;
  #onStateChange: ((state: SessionState, reason?: string) => void) | undefined;
  #conn: Connection | undefined;
  #connecting: Promise<Connection> | undefined;
  #lastError: unknown;
  #closed = false;
  /** A new session is being opened because the upstream forgot the last one: not an outage. */
  #renewing = false;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #listenTimer: NodeJS.Timeout | undefined;
  #waiters = new Set<() => void>();
  /** Calls on the SDK client (not the direct caller) whose agents may be asked, while they run. */
  readonly #asking = new Set<Interaction>();
  /** Calls on the SDK client running now, with the log relay each asked for (or none). */
  readonly #running = new Set<{ log?: CallLog | undefined }>();
  /** Called when the upstream's tool list may have changed (a notification, or a re-opened listen stream). */
  toolsChanged: (() => void) | undefined;
  /** Called with the URI of a subscribed resource the upstream says was updated. */
  resourceUpdated: ((uri: string) => void) | undefined;
  /** Called with the params of the upstream's `notifications/tasks/status` (2025-11-25; the upstream's own task id). */
  taskStatus: ((params: unknown) => void) | undefined;

  constructor(name: string, openTransport: (inPlaceProbe: boolean) => Promise<OpenedTransport>, logger: Logger, options: SessionOptions) {
    this.name = name;
    this.#openTransport = openTransport;
    this.#pinned = options.protocol !== "auto";
    this.#era = this.#pinned ? options.protocol : undefined;
    this.#options = options;
    this.#logger = logger;
    this.#onStateChange = options.onStateChange;
  }

  get state(): SessionState {
    if (this.#closed) return "closed";
    if (this.#conn || this.#renewing) return "connected";
    return this.#connecting ? "connecting" : "disconnected";
  }

  /** The negotiated protocol revision (the era), while connected. */
  get protocolVersion(): string | undefined {
    return this.#conn?.protocolVersion;
  }

  /** Whether the upstream speaks 2026-07-28 (while connected). */
  get modern(): boolean {
    return this.#conn?.modern ?? false;
  }

  /** Why the last connection attempt failed, for health reports (never a value it quoted). */
  get lastError(): string | undefined {
    return this.#lastError instanceof Error ? safeReason(this.#lastError) : undefined;
  }

  start(): void {
    void this.#connect();
  }

  /** A connection is open now: a call need not wait for one (`ready`). */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Waits up to `timeoutMs` for a (re)connection; fails with the reason when there is none. */
  async ready(timeoutMs: number): Promise<void> {
    await this.#connection(timeoutMs);
  }

  /** `paramsJson` is the serialized `params` of tools/call, `tool` its name; resolves with the serialized result. */
  callTool(tool: string, paramsJson: string, options: CallOptions): Promise<string> {
    return this.#attempt(options.timeoutMs, options.cancellation, (conn) => {
      if (options.task !== undefined) return this.#callForTask(conn, tool, paramsJson, options);
      if (conn.direct) return this.#callDirect(conn.direct, tool, paramsJson, options);
      return this.#callOnClient(conn, paramsJson, options);
    });
  }

  /**
   * A call that may answer with a task, in the upstream's era. 2025: the call carries `task` when
   * one is asked for, and none when the agent only offered to take one (the upstream answers at
   * once). 2026-07-28: no `task` parameter (the revision has none); the request declares the
   * tasks extension and the upstream decides; its `CreateTaskResult` goes on in the 2025 shape.
   * Over stdio the 2.4.0 SDK client refuses a `resultType: "task"` answer, so only a Streamable
   * HTTP upstream's tasks are relayed (a stdio one's tools are not listed as offering tasks, and a
   * call that only offered to take one goes out as a plain call).
   */
  async #callForTask(conn: Connection, tool: string, paramsJson: string, options: CallOptions): Promise<string> {
    const keepTask = !conn.modern && options.task === TaskMode.asked;
    let params = paramsJson;
    if (!keepTask) {
      const { task: _task, ...rest } = JSON.parse(paramsJson) as Record<string, unknown>;
      params = JSON.stringify(rest);
    }
    if (!conn.modern) return conn.direct ? this.#callDirect(conn.direct, tool, params, options) : this.#callOnClient(conn, params, options);
    if (!conn.direct) {
      if (options.task === TaskMode.offered) return this.#callOnClient(conn, params, options);
      throw new ManifoldError("upstream_error", `upstream '${this.name}' speaks 2026-07-28 over stdio: its tasks are not relayed (the SDK client refuses task results there)`);
    }
    return legacyCallAnswer(await conn.direct.callTool(tool, params, { ...options, tasks: true }));
  }

  /** tools/call through the SDK client (stdio and SSE upstreams). */
  /**
   * A call through the direct caller, which reads the questions on the call's own stream. The
   * upstream may also ask on the session's GET stream, which does not say for which call
   * (server-everything's roots/list): relayed like stdio's, while this is the only call that may ask.
   */
  #callDirect(direct: DirectCaller, tool: string, paramsJson: string, options: CallOptions): Promise<string> {
    const { interaction } = options;
    if (!interaction) return direct.callTool(tool, paramsJson, options);
    this.#asking.add(interaction);
    return direct.callTool(tool, paramsJson, options).finally(() => this.#asking.delete(interaction));
  }

  async #callOnClient(conn: Connection, paramsJson: string, options: CallOptions): Promise<string> {
    const { cancellation, onprogress, interaction, log } = options;
    if (interaction) this.#asking.add(interaction);
    const running = { log };
    this.#running.add(running);
    const params = JSON.parse(paramsJson) as { name: string; task?: unknown; _meta?: Record<string, unknown> };
    // 2026-07-28: an upstream sends log messages only for a request that names a level.
    if (log && conn.modern) params._meta = { ...params._meta, [LOG_LEVEL_META_KEY]: log.level };
    const sdkOptions = {
      timeout: options.timeoutMs,
      ...(cancellation ? { signal: cancellation.signal } : {}),
      ...(onprogress ? { onprogress, resetTimeoutOnProgress: true, maxTotalTimeout: options.budget } : {}),
    };
    try {
      const request = { method: "tools/call" as const, params };
      // A task-augmented call answers with a task (CreateTaskResult), not a tool result: passed on as it is.
      const result = await (params.task !== undefined ? conn.client.request(request, ANY_RESULT, sdkOptions) : conn.client.request(request, sdkOptions));
      mustNotNestTooDeep(result, `upstream '${this.name}'`, "result");
      return JSON.stringify(conn.modern ? neutralResult(result) : result);
    } finally {
      if (interaction) this.#asking.delete(interaction);
      this.#running.delete(running);
    }
  }

  /**
   * A request about one of the upstream's tasks, on this session: an upstream keeps tasks per
   * session. A 2025 upstream's answer goes on as it wrote it (the gateway maps ids); a 2026-07-28
   * upstream's tasks extension is mapped onto the same methods and shapes (`modernTasks.ts`).
   * `tasks/update` exists only there (a 2025 upstream's questions are answered on `tasks/result`).
   */
  taskRequest(request: TaskRequest, timeoutMs: number, interaction?: Interaction): Promise<string> {
    return this.#attempt(timeoutMs, undefined, async ({ client, modern }) => {
      if (modern) {
        const answer = await modernTaskRequest(client, request, timeoutMs, interaction);
        mustNotNestTooDeep(answer, `upstream '${this.name}'`, "result");
        return JSON.stringify(neutralResult(answer));
      }
      if (request.method === "tasks/update") throw new ManifoldError("invalid_request", "a 2025 upstream's task takes its answers on tasks/result");
      // A 2025 upstream sends a task's questions on the `tasks/result` stream: relayed like a call's.
      if (interaction) this.#asking.add(interaction);
      try {
        const result = await client.request({ method: request.method, params: { taskId: request.taskId } }, ANY_RESULT, { timeout: timeoutMs });
        mustNotNestTooDeep(result, `upstream '${this.name}'`, "result");
        return JSON.stringify(result);
      } finally {
        if (interaction) this.#asking.delete(interaction);
      }
    });
  }

  /** The upstream's full tool list (all pages) and server info. */
  listTools(timeoutMs: number): Promise<ListReply> {
    return this.#attempt(timeoutMs, undefined, async ({ client, modern, direct }) => {
      const tools = await listAllTools(client, this.name, timeoutMs);
      if (modern) this.#learnParamHeaders(tools);
      // 2026-07-28 has no per-tool task support: an upstream that declares the tasks extension may
      // answer any call with a task, which is what 2025's `taskSupport: "optional"` says (and pins).
      // Only where its tasks can be relayed: over Streamable HTTP (the direct caller).
      const tasks = modern && direct !== undefined && client.getServerCapabilities()?.extensions?.[TASK_EXTENSION] !== undefined;
      const listed = tasks ? tools.map((tool) => ({ ...tool, execution: { taskSupport: "optional" } })) : tools;
      return { serverInfo: client.getServerVersion() ?? { name: this.name, version: "unknown" }, tools: listed } as ListReply;
    });
  }

  /**
   * The upstream's prompts, resources and resource templates (all pages, at most
   * `MAX_LISTED_ITEMS` of each), each kind only when the upstream's capabilities offer it.
   */
  listItems(timeoutMs: number): Promise<Pick<ListReply, "prompts" | "resources" | "resourceTemplates">> {
    return this.#attempt(timeoutMs, undefined, ({ client }) => listAllItems(client, this.name, timeoutMs));
  }

  /** One of the other requests a virtual server forwards (`UpstreamRequestMethod`); resolves with the serialized result. */
  request(method: UpstreamRequestMethod, params: Record<string, unknown>, timeoutMs: number): Promise<string> {
    return this.#attempt(timeoutMs, undefined, async (conn) => {
      const { client } = conn;
      const options = { timeout: timeoutMs };
      // 2026-07-28 has no resources/subscribe: a listen stream for the URI replaces it.
      if (conn.modern && method === "resources/subscribe") return this.#followResource(conn, params.uri, timeoutMs);
      // The SDK checks each result against its schema; Manifold checks the params it forwards at the gateway.
      const p = params as never;
      const result =
        method === "resources/read" ? await client.readResource(p, { ...options, cacheMode: "bypass" })
        : method === "prompts/get" ? await client.getPrompt(p, options)
        : method === "completion/complete" ? await client.complete(p, options)
        : method === "resources/subscribe" ? await client.subscribeResource(p, options)
        : await client.unsubscribeResource(p, options);
      mustNotNestTooDeep(result, `upstream '${this.name}'`, "result");
      return JSON.stringify(conn.modern ? neutralResult(result) : result);
    });
  }

  /** Opens (once per URI and connection) a listen stream for a modern upstream's resource; its updates reach `resourceUpdated`. */
  async #followResource(conn: Connection, uri: unknown, timeoutMs: number): Promise<string> {
    if (typeof uri !== "string") throw new ManifoldError("invalid_arguments", "invalid params: 'uri' must be a string");
    const streams = (conn.resourceStreams ??= new Map());
    if (streams.has(uri)) return "{}";
    if (streams.size >= MAX_RESOURCE_STREAMS) throw new ManifoldError("upstream_error", `upstream '${this.name}' already has ${MAX_RESOURCE_STREAMS} resource subscriptions here`);
    const subscription = await conn.client.listen({ resourceSubscriptions: [uri] }, { timeout: timeoutMs });
    streams.set(uri, subscription);
    // A dropped stream is forgotten: the next subscribe opens another.
    void subscription.closed.then(() => streams.delete(uri));
    return "{}";
  }

  /**
   * A server-to-client request that reached the SDK client (stdio and SSE upstreams; a 2026-07-28
   * upstream's `input_required` rounds, which the client fulfils through these handlers). A
   * stdio stream does not say which call a request belongs to: it is relayed only while exactly
   * one call on this session may ask, and refused otherwise, so it never reaches another agent.
   */
  async #relay(request: InputRequest): Promise<never> {
    if (this.#asking.size !== 1) {
      const why = this.#asking.size === 0 ? "no call on this session may ask its agent" : "several calls are running and the request does not say whose it is";
      throw new ManifoldError("forbidden", `request refused: ${why}`);
    }
    const [only] = this.#asking;
    const answers = await only!.ask({ r: request });
    const answer = answers.r;
    if (!answer) throw new ManifoldError("upstream_error", "the caller did not answer the request");
    return answer as never;
  }

  /**
   * A log message that reached the SDK client (stdio and SSE upstreams; a Streamable HTTP
   * session's GET stream). It does not say which call it belongs to: it is relayed only while
   * exactly one call runs on this session and that call's caller asked for logs, else dropped, so
   * one agent never reads what another agent's call logged. (Direct calls read their own stream.)
   */
  #log(params: unknown): void {
    if (this.#running.size !== 1) return;
    const [only] = this.#running;
    only!.log?.send(params);
  }

  /** Only tools that declare header parameters get an entry: a call to any other tool looks up nothing more. */
  #learnParamHeaders(tools: Tool[]): void {
    const known = this.#options.paramHeaders;
    if (!known) return;
    known.clear();
    for (const tool of tools) {
      const declared = paramHeadersOf(tool.inputSchema);
      if (declared.length > 0) known.set(tool.name, declared);
    }
  }

  /** `terminate`: a 2025 Streamable HTTP session is ended at the upstream too (DELETE), within a second. */
  async close(options: { terminate?: boolean } = {}): Promise<void> {
    this.#closed = true;
    this.#onStateChange = undefined;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#listenTimer);
    for (const wake of this.#waiters) wake();
    const conn = this.#conn ?? (await this.#connecting?.catch(() => undefined));
    this.#conn = undefined;
    const transport = conn?.client.transport;
    if (options.terminate && transport instanceof StreamableHTTPClientTransport && transport.sessionId) {
      await Promise.race([transport.terminateSession().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, TERMINATE_TIMEOUT_MS).unref())]);
    }
    await conn?.client.close().catch(() => undefined);
  }

  /**
   * Runs `request` on the current connection. A 2025-era upstream that forgot the session gets
   * it once more on a new one; a session lost at the transport level is dropped, so the next
   * call reconnects. A 2026-07-28 connection has no session: it is never dropped for a failed call.
   */
  async #attempt<T>(timeoutMs: number, cancellation: Cancellation | undefined, request: (conn: Connection) => Promise<T>): Promise<T> {
    // Connected (nearly always): no wait, and no promise for it on the hot path.
    const conn = this.#conn ?? (await this.#connection(timeoutMs));
    try {
      return await request(conn);
    } catch (error) {
      // A call cancelled by its caller says nothing about the session.
      if (cancellation?.cancelled) throw error;
      if (!conn.modern && isSessionNotFound(error)) {
        this.#renew(conn);
        return request(await this.#connection(timeoutMs));
      }
      if (!conn.modern && mapUpstreamError(error, "", timeoutMs).code === "upstream_unavailable") this.#invalidate(conn, error);
      throw error;
    }
  }

  async #connection(timeoutMs: number): Promise<Connection> {
    if (this.#conn) return this.#conn;
    if (this.#closed) throw new ManifoldError("upstream_unavailable", `upstream '${this.name}' is no longer served here`);
    // Between failed attempts (backing off) a caller learns the last reason at once.
    if (!this.#connecting && !this.#renewing && this.#lastError) throw this.#unavailable();
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    this.#waiters.add(wake);
    const timer = setTimeout(wake, timeoutMs);
    try {
      await woken;
    } finally {
      clearTimeout(timer);
      this.#waiters.delete(wake);
    }
    if (this.#conn) return this.#conn;
    throw this.#unavailable();
  }

  #unavailable(): ManifoldError {
    const reason = this.#lastError instanceof Error ? `: ${safeReason(this.#lastError)}` : "";
    return new ManifoldError("upstream_unavailable", `upstream '${this.name}' is not connected${reason}`);
  }

  /** Drops a session that failed at the transport level, so the next call reconnects. */
  #invalidate(conn: Connection, cause: unknown): void {
    if (this.#conn !== conn) return;
    this.#logger.warn({ reason: safeReason(cause) }, "upstream session failed, reconnecting");
    this.#conn = undefined;
    this.#lastError = cause;
    this.#onStateChange?.("disconnected", this.lastError);
    void conn.client.close().catch(() => undefined);
    this.#scheduleReconnect();
  }

  /**
   * The upstream forgot this session (it restarted or expired it): opens a new one at once,
   * without backoff and without reporting an outage, as the transport spec asks. Any number of
   * callers renewing the same stale session open one new session.
   */
  #renew(stale: Connection): void {
    if (this.#conn !== stale || this.#closed) return;
    this.#logger.info("the upstream no longer knows the session, opening a new one");
    this.#conn = undefined;
    this.#renewing = true;
    void stale.client.close().catch(() => undefined);
    void this.#connect();
  }

  async #connect(): Promise<void> {
    // Never a second session beside a live one (a stray reconnect timer, a renewal).
    if (this.#closed || this.#connecting || this.#conn) return;
    // A known 2025 era skips the probe; a known modern one is required (a `server/discover`, in
    // place: a stdio upstream is spawned once either way); an unknown one is probed.
    const era = this.#era;
    const modern = era !== undefined && era !== LEGACY;
    const client = new Client(CLIENT_INFO, {
      capabilities: RELAYED_CAPABILITIES,
      jsonSchemaValidator: sharedValidator,
      versionNegotiation: modern ? { mode: { pin: era } } : { mode: "auto", probe: { timeoutMs: this.#options.probeTimeoutMs } },
    });
    client.setNotificationHandler("notifications/tools/list_changed", () => this.toolsChanged?.());
    client.setNotificationHandler("notifications/message", (notification) => this.#log(notification.params));
    client.setNotificationHandler("notifications/resources/updated", (n) => this.resourceUpdated?.(n.params.uri));
    // A 2025-11-25 notification the 2.4.0 client's types leave out (its 2025 codec parses it).
    client.setNotificationHandler("notifications/tasks/status" as "notifications/message", (n) => this.taskStatus?.(n.params));
    // Prompt and resource lists are discovered like tools: a change of them is drift to review.
    client.setNotificationHandler("notifications/prompts/list_changed", () => this.toolsChanged?.());
    client.setNotificationHandler("notifications/resources/list_changed", () => this.toolsChanged?.());
    for (const method of RELAYED_METHODS) client.setRequestHandler(method, (request) => this.#relay({ method, params: request.params } as InputRequest));
    this.#connecting = (async () => {
      const opened = await this.#openTransport(modern);
      await client.connect(opened.transport, era === LEGACY ? { prior: { kind: "legacy" } } : undefined);
      return this.#connected(client, opened);
    })();
    try {
      const conn = await this.#connecting;
      if (this.#closed) {
        await client.close();
        return;
      }
      this.#failures = 0;
      this.#lastError = undefined;
      if (!this.#pinned) this.#era = conn.modern ? conn.protocolVersion : LEGACY;
      this.#conn = conn;
      this.#renewing = false;
      client.onclose = () => {
        // Dropped on purpose (invalidated, renewed, closed): whoever dropped it decides what comes next.
        if (this.#conn !== conn || this.#closed) return;
        this.#conn = undefined;
        this.#lastError = new Error("session closed");
        this.#onStateChange?.("disconnected", "session closed");
        this.#logger.warn("upstream session closed, reconnecting");
        this.#scheduleReconnect();
      };
      this.#logger.info({ server: client.getServerVersion(), protocolVersion: conn.protocolVersion }, "upstream session established");
      if (conn.modern && this.#options.followChanges) void this.#listen(conn, false);
      this.#onStateChange?.("connected");
      for (const wake of this.#waiters) wake();
    } catch (error) {
      this.#renewing = false;
      this.#lastError = error;
      // The upstream may have changed era (a new release): the next attempt probes again.
      if (!this.#pinned) this.#era = undefined;
      this.#logger.warn({ reason: safeReason(error), attempt: this.#failures + 1 }, "upstream connection failed");
      this.#onStateChange?.("disconnected", this.lastError);
      // Callers waiting for this attempt learn now that it failed, instead of at their timeout.
      for (const wake of this.#waiters) wake();
      await client.close().catch(() => undefined);
      this.#scheduleReconnect();
    } finally {
      this.#connecting = undefined;
    }
  }

  #connected(client: Client, opened: OpenedTransport): Connection {
    keepNotificationsFirst(opened.transport);
    const protocolVersion = client.getNegotiatedProtocolVersion() ?? "unknown";
    const modern = client.getProtocolEra() === "modern";
    const { http } = opened;
    const pool = this.#options.pool;
    const sessionId = (opened.transport as StreamableHTTPClientTransport).sessionId;
    const direct =
      http && pool
        ? new DirectCaller(pool, http.url, http.headers, modern ? { modern, protocolVersion, paramHeaders: this.#options.paramHeaders } : { modern, sessionId, protocolVersion })
        : undefined;
    return { client, protocolVersion, modern, direct };
  }

  /**
   * Follows a modern upstream's tool list on a `subscriptions/listen` stream, where it offers
   * list changes. A dropped stream is re-opened (changes may have been missed meanwhile, so a
   * re-opened one counts as a change); the stream ends with the connection.
   */
  async #listen(conn: Connection, reopened: boolean): Promise<void> {
    if (this.#conn !== conn || this.#closed || !conn.client.getServerCapabilities()?.tools?.listChanged) return;
    try {
      const subscription = await conn.client.listen({ toolsListChanged: true });
      conn.subscription = subscription;
      if (reopened) this.toolsChanged?.();
      void subscription.closed.then((how) => {
        if (how !== "local") this.#relisten(conn);
      });
    } catch (error) {
      this.#logger.debug({ reason: safeReason(error) }, "could not listen for tool-list changes");
      this.#relisten(conn);
    }
  }

  #relisten(conn: Connection): void {
    if (this.#conn !== conn || this.#closed) return;
    clearTimeout(this.#listenTimer);
    this.#listenTimer = setTimeout(() => void this.#listen(conn, true), 1_000).unref();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer) return;
    const delay = Math.min(250 * 2 ** this.#failures++, MAX_BACKOFF_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#connect();
    }, delay);
  }
}
