import { ManifoldError, type InputRequest, type UpstreamProtocol } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { Client, type McpSubscription, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/client/validators/ajv";
import { randomBytes } from "node:crypto";
import type { Pool } from "undici";
import { DirectCaller } from "./directCaller.js";
import { keepNotificationsFirst } from "./inboundOrder.js";
import { holdFiniteNumbers } from "./finiteNumbers.js";
import { guardInbound, SESSION_INBOUND, type InboundBudget } from "./inboundBudget.js";
import { SESSION_REQUESTS, boundServerRequests } from "./serverRequests.js";
import type { ParamHeader } from "@manifold/contracts";
import { CLIENT_INFO } from "./modernRequest.js";
import type { OpenedTransport } from "./transports.js";
import { redact, type EchoForm } from "./withheldValues.js";
import { safeReason } from "./upstreamErrors.js";
import { ListingClient, MAX_LIST_PAGES } from "./upstreamListing.js";
import type { TaskOwners } from "./taskOwners.js";

export type SessionState = "connecting" | "connected" | "disconnected" | "closed";

export interface SessionOptions {
  /** The era the upstream's registration pins, or `auto` to probe. */
  protocol: UpstreamProtocol;
  /** How long the era probe (`server/discover`) may take before a stdio upstream counts as 2025-era. */
  probeTimeoutMs: number;
  /**
   * How long the handshake (`initialize`, or the era probe and then `initialize`) may take: the
   * SDK's own bound is 60 s, and an upstream hung at start-up showed `connecting`, without a
   * reason and without another attempt, for a minute whatever `CONNECT_TIMEOUT_MS` said.
   */
  connectTimeoutMs?: number | undefined;
  /** Keep-alive connections for direct calls (Streamable HTTP upstreams only). */
  pool?: Pool | undefined;
  /**
   * Per tool, the parameters a modern upstream wants mirrored into `Mcp-Param-*` headers: shared
   * by every session of the upstream, refreshed by whichever lists its tools (the shared one).
   */
  paramHeaders?: Map<string, readonly ParamHeader[]> | undefined;
  /** Follow the upstream's tool-list changes (the shared session does; callers' own sessions need not). */
  followChanges?: boolean;
  /**
   * The longest wait between reconnection attempts (`MAX_BACKOFF_MS` when absent). An HTTP
   * upstream's is the breaker's cooldown (`SessionPool`): the back-off counts on across outages
   * while sessions last under `STABLE_MS`, so a third 10 s outage of a proxy in a row left calls
   * refused for 20 s after it healed (`upstreamOutageRecovery.e2e`), a longer one for up to 30 s.
   */
  maxBackoffMs?: number | undefined;
  onStateChange?: ((state: SessionState, reason?: string) => void) | undefined;
}

/** One connection to the upstream, in the era it negotiated. */
export interface Connection {
  /**
   * Minted for each connection, never reused: a 2025 upstream's task ids are its session's (a
   * restarted one numbers them from "1" again), so a task is named by its id and this.
   */
  readonly id: string;
  readonly client: Client;
  /** The negotiated revision: `2026-07-28` (modern, no session) or a 2025 one (an `initialize`d session). */
  readonly protocolVersion: string;
  readonly modern: boolean;
  /** tools/call straight over HTTP: the hot path, for Streamable HTTP upstreams of either era. */
  readonly direct: DirectCaller | undefined;
  /** What the upstream may send of its own over this connection (`guardInbound`). */
  readonly inbound: InboundBudget;
  subscription?: McpSubscription;
  /** A modern upstream's resource subscriptions: one `subscriptions/listen` stream per URI. */
  resourceStreams?: Map<string, McpSubscription>;
  /** Listens for a resource being opened now, so two subscribes of one URI share one. */
  pendingResourceStreams?: Map<string, Promise<string>>;
  /** A modern upstream's tasks created over this connection, by creator. */
  taskOwners?: TaskOwners;
}

/** What the upstream sends over a connection besides answers: the session decides where each goes. */
export interface ConnectionHandlers {
  /** The upstream's tool, prompt or resource list may have changed (a notification, or a re-opened listen stream). */
  toolsChanged(): void;
  resourceUpdated(uri: string): void;
  /** The params of `notifications/tasks/status`, and the connection (`Connection.id`) they came on. */
  taskStatus(params: unknown, connection: string): void;
  /** The params of a log message (`notifications/message`). */
  log(params: unknown): void;
  /** A server-to-client request (`RELAYED_METHODS`) of JSON-RPC id `id`: resolves with its answer. */
  relay(request: InputRequest, id: string | number): Promise<never>;
}

/**
 * What the connector's client declares to upstreams: every kind of server-to-client request a
 * virtual server may allow, so the upstream offers its tools that need them; each request is then
 * relayed only for a call whose agent declared it and whose virtual server allows it.
 */
const RELAYED_CAPABILITIES = { elicitation: { form: {}, url: {} }, sampling: {}, roots: {} };
const RELAYED_METHODS = ["elicitation/create", "sampling/createMessage", "roots/list"] as const;

/** The longest wait between reconnection attempts of a stdio upstream, each of which spawns its process. */
const MAX_BACKOFF_MS = 30_000;
/** How long a connection must last for its end to start the backoff again from 250 ms. */
const STABLE_MS = 30_000;
/** How long ending a session at the upstream may take before the connection is just closed. */
const TERMINATE_TIMEOUT_MS = 1_000;
const LEGACY = "2025";
/** The most credential forms a session remembers from connections before its current one (`credentials`): rotations are rare. */
const MAX_RETIRED_FORMS = 32;

/** `what` happened to the connection, and how a stdio upstream's process ended if it has (`OpenedTransport.exit`). */
const ended = (what: string, exit: OpenedTransport["exit"]): string => {
  const how = exit?.();
  return how ? `${what}: ${how}` : what;
};

/** Each SDK client otherwise builds its own Ajv instance; one per process serves every session. */
const sharedValidator = new AjvJsonSchemaValidator();

/**
 * The connection an `UpstreamSession` runs its requests over: opened with the 2.x
 * SDK client (probing the era, or in the pinned one), reopened with exponential backoff when it
 * drops, renewed at once when the upstream forgets its session. A modern upstream's tool list is
 * followed on a `subscriptions/listen` stream. Whether a failed request costs the connection is
 * the session's to say (`invalidate`, `renew`).
 */
export class UpstreamConnection {
  readonly #name: string;
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
  readonly #handlers: ConnectionHandlers;
  #onStateChange: ((state: SessionState, reason?: string) => void) | undefined;
  #conn: Connection | undefined;
  #connecting: Promise<Connection> | undefined;
  #lastError: unknown;
  #closed = false;
  /** A new session is being opened because the upstream forgot the last one: not an outage. */
  #renewing = false;
  #failures = 0;
  /** The client of the attempt under way (`#connecting`), and its transport once opened. */
  #opening: Client | undefined;
  #openingTransport: OpenedTransport["transport"] | undefined;
  /** When the open connection was established: only one that lasted `STABLE_MS` resets the backoff. */
  #connectedAt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** When `#retryTimer` starts the next attempt (`performance.now()`): a refusal meanwhile says so. */
  #retryAt = 0;
  #listenTimer: NodeJS.Timeout | undefined;
  #waiters = new Set<() => void>();
  #sent: readonly EchoForm[] = [];

  constructor(name: string, openTransport: (inPlaceProbe: boolean) => Promise<OpenedTransport>, logger: Logger, options: SessionOptions, handlers: ConnectionHandlers) {
    this.#name = name;
    this.#openTransport = openTransport;
    this.#pinned = options.protocol !== "auto";
    this.#era = this.#pinned ? options.protocol : undefined;
    this.#options = options;
    this.#logger = logger;
    this.#handlers = handlers;
    this.#onStateChange = options.onStateChange;
  }

  /**
   * Every credential form this session's connections have sent (a rotated secret's old value and
   * the new one), kept after a connection closes: a call's answer may arrive after its connection
   * was dropped or replaced, and is cleaned of what it was sent with. Bounded; rotation is rare.
   */
  get credentials(): readonly EchoForm[] {
    return this.#sent;
  }

  /** The open connection, if there is one: a request on it need not wait (`connection`). */
  get current(): Connection | undefined {
    return this.#conn;
  }

  get state(): SessionState {
    if (this.#closed) return "closed";
    if (this.#conn || this.#renewing) return "connected";
    return this.#connecting ? "connecting" : "disconnected";
  }

  /** Why the last connection attempt failed, for health reports (never a value it quoted). */
  get lastError(): string | undefined {
    return this.#lastError instanceof Error ? safeReason(this.#lastError) : undefined;
  }

  start(): void {
    void this.#connect();
  }

  /** `terminate`: a 2025 Streamable HTTP session is ended at the upstream too (DELETE), within a second. */
  async close(options: { terminate?: boolean } = {}): Promise<void> {
    this.#closed = true;
    this.#onStateChange = undefined;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#listenTimer);
    for (const wake of this.#waiters) wake();
    // An attempt under way (an upstream that never answers initialize holds it for CONNECT_TIMEOUT_MS):
    // its client is closed now, which ends the attempt (and a stdio upstream's process) at once.
    // The client closes its transport only once the transport has started: a legacy SSE transport
    // waiting for its upstream's `endpoint` event is closed here (`endpointBounded`), or the
    // attempt, and this close, waited for good.
    if (!this.#conn) {
      void this.#opening?.close().catch(() => undefined);
      void this.#openingTransport?.close().catch(() => undefined);
    }
    const conn = this.#conn ?? (await this.#connecting?.catch(() => undefined));
    this.#conn = undefined;
    const transport = conn?.client.transport;
    if (options.terminate && transport instanceof StreamableHTTPClientTransport && transport.sessionId) {
      await Promise.race([transport.terminateSession().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, TERMINATE_TIMEOUT_MS).unref())]);
    }
    await conn?.client.close().catch(() => undefined);
  }

  /** The open connection, or the next one within `timeoutMs`; fails with the reason when there is none. */
  async connection(timeoutMs: number): Promise<Connection> {
    if (this.#conn) return this.#conn;
    if (this.#closed) throw new ManifoldError("upstream_unavailable", `upstream '${this.#name}' is no longer served here`);
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

  /** Between attempts, when the next one is due (`data.retryAfterMs`, never 0); during one, unknown. */
  #unavailable(): ManifoldError {
    const reason = this.#lastError instanceof Error ? `: ${safeReason(this.#lastError)}` : "";
    const retry = this.#retryTimer ? { retryAfterMs: Math.max(1, Math.ceil(this.#retryAt - performance.now())) } : undefined;
    return new ManifoldError("upstream_unavailable", `upstream '${this.#name}' is not connected${reason}`, retry);
  }

  /** Drops a session that failed at the transport level, so the next call reconnects. */
  invalidate(conn: Connection, cause: unknown): void {
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
  renew(stale: Connection): void {
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
    const client = new ListingClient(CLIENT_INFO, {
      capabilities: RELAYED_CAPABILITIES,
      jsonSchemaValidator: sharedValidator,
      listMaxPages: MAX_LIST_PAGES,
      versionNegotiation: modern ? { mode: { pin: era } } : { mode: "auto", probe: { timeoutMs: this.#options.probeTimeoutMs } },
    });
    const handlers = this.#handlers;
    const id = randomBytes(12).toString("base64url");
    client.setNotificationHandler("notifications/tools/list_changed", () => handlers.toolsChanged());
    client.setNotificationHandler("notifications/message", (notification) => handlers.log(notification.params));
    client.setNotificationHandler("notifications/resources/updated", (n) => handlers.resourceUpdated(n.params.uri));
    // A 2025-11-25 notification the 2.4.0 client's types leave out (its 2025 codec parses it).
    client.setNotificationHandler("notifications/tasks/status" as "notifications/message", (n) => handlers.taskStatus(n.params, id));
    // Prompt and resource lists are discovered like tools: a change of them is drift to review.
    client.setNotificationHandler("notifications/prompts/list_changed", () => handlers.toolsChanged());
    client.setNotificationHandler("notifications/resources/list_changed", () => handlers.toolsChanged());
    for (const method of RELAYED_METHODS) client.setRequestHandler(method, (request, ctx) => handlers.relay({ method, params: request.params } as InputRequest, ctx.mcpReq.id));
    this.#opening = client;
    let exit: OpenedTransport["exit"];
    this.#connecting = (async () => {
      const opened = await this.#openTransport(modern);
      exit = opened.exit;
      this.#openingTransport = opened.transport;
      if (this.#closed) throw new ManifoldError("upstream_unavailable", `upstream '${this.#name}' is no longer served here`);
      const timeout = this.#options.connectTimeoutMs;
      await client.connect(opened.transport, { ...(era === LEGACY ? { prior: { kind: "legacy" } as const } : {}), ...(timeout ? { timeout } : {}) });
      return this.#connected(id, client, opened);
    })();
    try {
      const conn = await this.#connecting;
      if (this.#closed) {
        await client.close();
        return;
      }
      this.#connectedAt = Date.now();
      this.#lastError = undefined;
      if (!this.#pinned) this.#era = conn.modern ? conn.protocolVersion : LEGACY;
      this.#conn = conn;
      this.#renewing = false;
      // A flood (even one that began while connecting) ends the session: its backoff grows while sessions do not last.
      conn.inbound.onFlood(() => this.invalidate(conn, new Error(`the upstream sent more than ${conn.inbound.perSecond} messages (or ${SESSION_INBOUND.updatesPerSecond} resource updates) in a second that answered nothing asked (notifications, requests, unreadable or empty ones): session closed`)));
      client.onclose = () => {
        // Dropped on purpose (invalidated, renewed, closed): whoever dropped it decides what comes next.
        if (this.#conn !== conn || this.#closed) return;
        this.#conn = undefined;
        this.#lastError = new Error(ended("session closed", exit));
        this.#onStateChange?.("disconnected", this.lastError);
        this.#logger.warn("upstream session closed, reconnecting");
        this.#scheduleReconnect();
      };
      this.#logger.info({ server: serverNamed(client.getServerVersion(), this.credentials), protocolVersion: conn.protocolVersion }, "upstream session established");
      if (conn.modern && this.#options.followChanges) void this.#listen(conn, false);
      this.#onStateChange?.("connected");
      for (const wake of this.#waiters) wake();
    } catch (error) {
      this.#renewing = false;
      // A stdio process that exited before it answered says so (the SDK's error is "Connection closed").
      const how = exit?.();
      this.#lastError = how && error instanceof Error ? new Error(ended(safeReason(error), exit)) : error;
      // The upstream may have changed era (a new release): the next attempt probes again.
      if (!this.#pinned) this.#era = undefined;
      this.#logger.warn({ reason: safeReason(error), attempt: this.#failures + 1 }, "upstream connection failed");
      this.#onStateChange?.("disconnected", this.lastError);
      // Scheduled first, so the callers woken below are told when the next attempt is due.
      this.#scheduleReconnect();
      // Callers waiting for this attempt learn now that it failed, instead of at their timeout.
      for (const wake of this.#waiters) wake();
      await client.close().catch(() => undefined);
    } finally {
      this.#connecting = undefined;
      this.#opening = undefined;
      this.#openingTransport = undefined;
    }
  }

  #connected(id: string, client: Client, opened: OpenedTransport): Connection {
    keepNotificationsFirst(opened.transport);
    holdFiniteNumbers(opened.transport, `upstream '${this.#name}'`);
    boundServerRequests(opened.transport, () => this.#logger.warn({ ...SESSION_REQUESTS }, "upstream requests past the session's bound were dropped unanswered"));
    const protocolVersion = client.getNegotiatedProtocolVersion() ?? "unknown";
    const modern = client.getProtocolEra() === "modern";
    const { http } = opened;
    const pool = this.#options.pool;
    const sessionId = (opened.transport as StreamableHTTPClientTransport).sessionId;
    const direct =
      http && pool
        ? new DirectCaller(pool, http.url, http.headers, modern ? { modern, protocolVersion, paramHeaders: this.#options.paramHeaders } : { modern, sessionId, protocolVersion }, this.#options.connectTimeoutMs)
        : undefined;
    // The new connection's own first, all of them; then those retired connections sent, newest first, bounded.
    const current = new Set(opened.credentials.map((form) => form.value));
    const retired = this.#sent.filter((form) => !current.has(form.value)).slice(0, MAX_RETIRED_FORMS);
    this.#sent = [...opened.credentials, ...retired];
    // Last, so that what is past the budget is dropped before the wrappers above work on it.
    guardInbound(opened.transport, opened.inbound);
    return { id, client, protocolVersion, modern, direct, inbound: opened.inbound };
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
      if (reopened) this.#handlers.toolsChanged();
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
    // An upstream that answers initialize and then dies at once is a crash loop, not a recovery:
    // the backoff starts again only after a connection that lasted (it was respawned ~1.2 times a second, for ever).
    if (this.#connectedAt !== 0 && Date.now() - this.#connectedAt >= STABLE_MS) this.#failures = 0;
    this.#connectedAt = 0;
    const delay = Math.min(250 * 2 ** this.#failures++, this.#options.maxBackoffMs ?? MAX_BACKOFF_MS);
    this.#retryAt = performance.now() + delay;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#connect();
    }, delay);
  }
}

/** The most of each of an upstream's name and version a log line shows. */
const MAX_NAMED = 256;

/**
 * An upstream's `serverInfo` as the session's log line names it: its name and version, without the
 * credentials the connector sent it, each bounded. Logged as it came, a debug build's serverInfo
 * quoting its request put the operator's static key in clear in the log, and its padding made a
 * 1 MiB line on every session it opened (echoedServerInfo.e2e); the discovery report was cleaned.
 */
function serverNamed(info: { name?: unknown; version?: unknown } | undefined, sent: readonly EchoForm[]): { name?: string; version?: string } | undefined {
  if (!info) return undefined;
  const shown = (text: unknown) => (typeof text === "string" ? redact(redact(text), sent.map((form) => form.value)).slice(0, MAX_NAMED) : undefined);
  return { name: shown(info.name), version: shown(info.version) };
}
