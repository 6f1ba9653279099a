import { ManifoldError } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import type { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { Pool } from "undici";
import { DirectCaller } from "./directCaller.js";
import type { OpenedTransport } from "./transports.js";
import { safeReason } from "./upstreamErrors.js";

export type SessionState = "connecting" | "connected" | "disconnected" | "closed";

const CLIENT_INFO = { name: "manifold-connector", version: "0.1.0" };
const MAX_BACKOFF_MS = 30_000;
/** Each SDK client otherwise builds its own Ajv instance; one per process serves every session. */
const sharedValidator = new AjvJsonSchemaValidator();

/**
 * One long-lived MCP client session to an upstream. It connects in the background,
 * reconnects with exponential backoff whenever the session drops, and lets callers wait
 * a bounded time for it to be usable.
 */
export class UpstreamSession {
  readonly name: string;
  readonly #openTransport: () => Promise<OpenedTransport>;
  readonly #pool: Pool | undefined;
  #direct: DirectCaller | undefined;
  readonly #logger: Logger;
  #onStateChange: ((state: SessionState, reason?: string) => void) | undefined;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #lastError: unknown;
  #closed = false;
  /** A new session is being opened because the upstream forgot the last one: not an outage. */
  #renewing = false;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #waiters = new Set<() => void>();
  /** Called when the upstream announces `notifications/tools/list_changed`. */
  toolsChanged: (() => void) | undefined;

  constructor(
    name: string,
    openTransport: () => Promise<OpenedTransport>,
    logger: Logger,
    onStateChange?: (state: SessionState, reason?: string) => void,
    pool?: Pool,
  ) {
    this.name = name;
    this.#openTransport = openTransport;
    this.#pool = pool;
    this.#logger = logger;
    this.#onStateChange = onStateChange;
  }

  get state(): SessionState {
    if (this.#closed) return "closed";
    if (this.#client || this.#renewing) return "connected";
    return this.#connecting ? "connecting" : "disconnected";
  }

  /** The direct tools/call path of the current session (Streamable HTTP upstreams only). */
  get direct(): DirectCaller | undefined {
    return this.#client ? this.#direct : undefined;
  }

  /** Why the last connection attempt failed, for health reports (never a value it quoted). */
  get lastError(): string | undefined {
    return this.#lastError instanceof Error ? safeReason(this.#lastError) : undefined;
  }

  start(): void {
    void this.#connect();
  }

  /** The connected client, waiting up to `timeoutMs` for a (re)connection. */
  async client(timeoutMs: number): Promise<Client> {
    if (this.#client) return this.#client;
    if (this.#closed) throw new ManifoldError("upstream_unavailable", `upstream '${this.name}' is no longer served here`);
    // Between failed attempts (backing off) a caller learns the last reason at once.
    if (!this.#connecting && this.#lastError) throw this.#unavailable();
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
    if (this.#client) return this.#client;
    throw this.#unavailable();
  }

  #unavailable(): ManifoldError {
    const reason = this.#lastError instanceof Error ? `: ${safeReason(this.#lastError)}` : "";
    return new ManifoldError("upstream_unavailable", `upstream '${this.name}' is not connected${reason}`);
  }

  /** Drops a session that failed at the transport level, so the next call reconnects. */
  invalidate(client: Client, cause: unknown): void {
    if (this.#client !== client) return;
    this.#logger.warn({ reason: safeReason(cause) }, "upstream session failed, reconnecting");
    this.#client = undefined;
    this.#lastError = cause;
    this.#onStateChange?.("disconnected", this.lastError);
    void client.close().catch(() => undefined);
    this.#scheduleReconnect();
  }

  /**
   * The upstream forgot this session (it restarted or expired it): opens a new one at once,
   * without backoff and without reporting an outage, as the transport spec asks. Callers that
   * hold the stale client then wait for the new one with `client()`; any number of them
   * renewing the same stale session open one new session.
   */
  renew(stale: Client): void {
    if (this.#client !== stale || this.#closed) return;
    this.#logger.info("the upstream no longer knows the session, opening a new one");
    this.#client = undefined;
    this.#renewing = true;
    void stale.close().catch(() => undefined);
    void this.#connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#onStateChange = undefined;
    clearTimeout(this.#retryTimer);
    for (const wake of this.#waiters) wake();
    const client = this.#client ?? (await this.#connecting?.catch(() => undefined));
    this.#client = undefined;
    await client?.close().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    // Never a second session beside a live one (a stray reconnect timer, a renewal).
    if (this.#closed || this.#connecting || this.#client) return;
    const client = new Client(CLIENT_INFO, { capabilities: {}, jsonSchemaValidator: sharedValidator });
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.toolsChanged?.());
    let opened: OpenedTransport | undefined;
    this.#connecting = (async () => {
      opened = await this.#openTransport();
      await client.connect(opened.transport);
      return client;
    })();
    try {
      await this.#connecting;
      if (this.#closed) {
        await client.close();
        return;
      }
      this.#failures = 0;
      this.#lastError = undefined;
      const http = opened?.http;
      const transport = opened?.transport as StreamableHTTPClientTransport | undefined;
      this.#direct =
        http && this.#pool && transport
          ? new DirectCaller(this.#pool, http.url, http.headers, transport.sessionId, transport.protocolVersion)
          : undefined;
      this.#client = client;
      this.#renewing = false;
      client.onclose = () => {
        // Dropped on purpose (invalidated, renewed, closed): whoever dropped it decides what comes next.
        if (this.#client !== client || this.#closed) return;
        this.#client = undefined;
        this.#lastError = new Error("session closed");
        this.#onStateChange?.("disconnected", "session closed");
        this.#logger.warn("upstream session closed, reconnecting");
        this.#scheduleReconnect();
      };
      this.#logger.info({ server: client.getServerVersion() }, "upstream session established");
      this.#onStateChange?.("connected");
      for (const wake of this.#waiters) wake();
    } catch (error) {
      this.#renewing = false;
      this.#lastError = error;
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

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer) return;
    const delay = Math.min(250 * 2 ** this.#failures++, MAX_BACKOFF_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      void this.#connect();
    }, delay);
  }
}
