import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import { randomUUID } from "node:crypto";
import { sendWebResponse, webRequest } from "./http/webExchange.js";
import type { SessionDirectory, SessionRecord } from "./sessionDirectory.js";

export interface SessionLimits {
  /** Sessions this replica holds at most. */
  total: number;
  /** Sessions one principal may start on this replica. */
  perPrincipal: number;
}

export interface Session {
  readonly id: string;
  readonly virtualServer: string;
  readonly environment: string;
  /** Who opened the session; every later request must come from the same principal. */
  readonly principal: Principal;
  readonly record: SessionRecord;
  readonly transport: WebStandardStreamableHTTPServerTransport;
  readonly server: Server;
  lastSeen: number;
  /** JSON-RPC request ids (typed: `number:1`, `string:1`) whose answers this replica has not finished. */
  readonly pendingIds: Set<string>;
}

/** Keys of the JSON-RPC requests in a body (notifications and responses carry no id to answer). */
function requestKeys(body: unknown): string[] {
  const keys: string[] = [];
  for (const m of Array.isArray(body) ? body : [body]) {
    const { id, method } = m as { id?: unknown; method?: unknown };
    if (typeof method === "string" && (typeof id === "string" || typeof id === "number")) keys.push(`${typeof id}:${id}`);
  }
  return keys;
}

const replayHeaders = (id: string | undefined, protocolVersion?: string) => ({
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  ...(id ? { "mcp-session-id": id } : {}),
  ...(protocolVersion ? { "mcp-protocol-version": protocolVersion } : {}),
});

/**
 * The MCP sessions this gateway replica serves. A session is created by initialize on any
 * replica and recorded in the shared directory; another replica that receives a request
 * for it adopts it by replaying the recorded initialize into an SDK server of its own, so
 * no load balancer stickiness is needed. DELETE ends a session on every replica.
 */
export class SessionTable {
  readonly #sessions = new Map<string, Session>();
  readonly #adopting = new Map<string, Promise<Session | undefined>>();
  readonly #logger: Logger;
  readonly #idleMs: number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #limits: SessionLimits;
  #directory: SessionDirectory | undefined;

  constructor(logger: Logger, idleMs: number, limits: SessionLimits) {
    this.#logger = logger;
    this.#idleMs = idleMs;
    this.#limits = limits;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(idleMs, 60_000)).unref();
  }

  attach(directory: SessionDirectory): void {
    this.#directory = directory;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Refuses a new session past this replica's limits. Only initialize is checked: a session
   * adopted from another replica was admitted where it began (it counts here once held).
   */
  mustAdmit(principal: Principal): void {
    if (this.#sessions.size >= this.#limits.total) {
      throw new ManifoldError("at_capacity", `this gateway replica holds its maximum of ${this.#limits.total} sessions; initialize on another replica`);
    }
    let held = 0;
    for (const session of this.#sessions.values()) if (session.principal.id === principal.id) held++;
    if (held >= this.#limits.perPrincipal) {
      throw new ManifoldError(
        "too_many_sessions",
        `${principal.consumer ? `consumer '${principal.consumer}'` : "this caller"} already holds ${held} sessions on this gateway replica (at most ${this.#limits.perPrincipal}); end one with DELETE or let one expire`,
      );
    }
  }

  /** Starts a session with the client's initialize request and answers it. */
  async open(virtualServer: string, environment: string, principal: Principal, server: Server, request: FastifyRequest): Promise<Response> {
    const record: SessionRecord = { virtualServer, environment, principalId: principal.id, initialize: request.body };
    const { transport, unrecorded } = this.#transport(randomUUID, principal, server, record);
    await server.connect(transport);
    const response = await transport.handleRequest(webRequest(request), { parsedBody: request.body });
    const failure = unrecorded();
    if (failure) {
      // No other replica could serve it: the session is refused, with the bus named as the cause.
      await response.body?.cancel();
      if (transport.sessionId) await this.closeLocal(transport.sessionId);
      throw failure;
    }
    return response;
  }

  /**
   * This replica's session with that id, if it belongs to this virtual server and principal:
   * a live one, or one adopted from the directory. Another principal's session is reported as
   * unknown: its id must not be confirmed.
   */
  async find(id: string, virtualServer: string, environment: string, principal: Principal, createServer: () => Server): Promise<Session | undefined> {
    const local = this.#sessions.get(id);
    const session = local ?? (await this.#adopt(id, virtualServer, environment, principal, createServer));
    const mine = session && session.virtualServer === virtualServer && session.environment === environment && session.principal.id === principal.id;
    if (!session || !mine) return undefined;
    session.lastSeen = Date.now();
    this.#directory?.touch(id, session.record);
    return session;
  }

  /**
   * The SDK routes answers by request id: a second request with an id still in flight would
   * never be answered, so it is refused now. Ids are released when their response ends.
   */
  claimRequestIds(session: Session, body: unknown, reply: FastifyReply): void {
    const keys = requestKeys(body);
    if (keys.length === 0) return;
    const clash = keys.find((key, i) => session.pendingIds.has(key) || keys.indexOf(key) !== i);
    if (clash) throw new ManifoldError("duplicate_request_id", `request id ${clash.slice(clash.indexOf(":") + 1, 200)} is already in flight in this session`);
    for (const key of keys) session.pendingIds.add(key);
    reply.raw.once("close", () => {
      for (const key of keys) session.pendingIds.delete(key);
    });
  }

  /** Hands a request of a live session to its SDK transport. */
  async handle(session: Session, request: FastifyRequest, reply: FastifyReply, authInfo?: AuthInfo): Promise<FastifyReply> {
    const response = await session.transport.handleRequest(webRequest(request), { parsedBody: request.body, ...(authInfo ? { authInfo } : {}) });
    return request.method === "GET" ? sendWebResponse(reply, response) : reply.send(response);
  }

  /** Tells every local session of the virtual server that its tool list changed. */
  notifyToolsChanged(virtualServer: string): void {
    for (const session of this.#sessions.values()) {
      if (session.virtualServer !== virtualServer) continue;
      session.server.sendToolListChanged().catch((err: unknown) => this.#logger.debug({ err }, "list_changed not delivered"));
    }
  }

  /** Tells the virtual server's sessions that its prompts and resources changed (sessions opened without them do not hear it). */
  notifyItemsChanged(virtualServer: string): void {
    for (const session of this.#sessions.values()) {
      if (session.virtualServer !== virtualServer) continue;
      for (const send of [() => session.server.sendPromptListChanged(), () => session.server.sendResourceListChanged()]) {
        send().catch((err: unknown) => this.#logger.debug({ err }, "list_changed not delivered"));
      }
    }
  }

  async closeVirtualServer(virtualServer: string): Promise<void> {
    const closing = [...this.#sessions.values()].filter((s) => s.virtualServer === virtualServer);
    await Promise.all(closing.map((s) => this.closeLocal(s.id)));
  }

  /** Drops this replica's copy of a session (it may live on elsewhere). */
  async closeLocal(id: string): Promise<void> {
    const session = this.#sessions.get(id);
    if (!session) return;
    this.#sessions.delete(id);
    this.#directory?.forget(id);
    await session.server.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweeper);
    await Promise.all([...this.#sessions.keys()].map((id) => this.closeLocal(id)));
  }

  #transport(generateId: () => string, principal: Principal, server: Server, record: SessionRecord) {
    const { virtualServer, environment } = record;
    let failure: unknown;
    const transport: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: generateId,
      onsessioninitialized: async (id) => {
        this.#sessions.set(id, { id, virtualServer, environment, principal, record, transport, server, lastSeen: Date.now(), pendingIds: new Set() });
        // Thrown here, the SDK would answer JSON-RPC -32700 "Parse error" with the cause's text;
        // the caller reports it as what it is (`bus_unavailable`) instead.
        await this.#directory?.record(id, record).catch((error: unknown) => void (failure = error));
      },
      // DELETE: the session ends on every replica.
      onsessionclosed: async (id) => {
        this.#sessions.delete(id);
        await this.#directory?.remove(id);
      },
    });
    return { transport, unrecorded: () => failure };
  }

  async #adopt(id: string, virtualServer: string, environment: string, principal: Principal, createServer: () => Server): Promise<Session | undefined> {
    let pending = this.#adopting.get(id);
    if (!pending) {
      pending = (async () => {
        const record = await this.#directory?.lookup(id);
        const matches = record && record.virtualServer === virtualServer && record.environment === environment && record.principalId === principal.id;
        if (!record || !matches) return undefined;
        const server = createServer();
        // Re-recording an adopted session only refreshes its entry: a failure there is not fatal.
        const { transport } = this.#transport(() => id, principal, server, record);
        await server.connect(transport);
        // Replaying the client's own initialize gives this replica's server the same negotiated state.
        const init = await transport.handleRequest(new Request("http://gateway/adopt", { method: "POST", headers: replayHeaders(undefined) }), {
          parsedBody: record.initialize,
        });
        await init.text();
        const version = (record.initialize as { params?: { protocolVersion?: string } }).params?.protocolVersion;
        const initialized = await transport.handleRequest(new Request("http://gateway/adopt", { method: "POST", headers: replayHeaders(id, version) }), {
          parsedBody: { jsonrpc: "2.0", method: "notifications/initialized" },
        });
        await initialized.text();
        this.#logger.debug({ session: id.slice(0, 8) }, "adopted session from the directory");
        return this.#sessions.get(id);
      })().finally(() => this.#adopting.delete(id));
      this.#adopting.set(id, pending);
    }
    return pending;
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#idleMs;
    for (const session of this.#sessions.values()) if (session.lastSeen < cutoff) void this.closeLocal(session.id);
  }
}
