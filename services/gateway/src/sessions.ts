import { ManifoldError, type SessionChanged, type SessionState } from "@manifold/contracts";
import { changeSession, OwnedItems, type Principal, type SessionChange } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import { randomUUID } from "node:crypto";
import { sendWebResponse, webRequest } from "./http/webExchange.js";
import type { AnswerRelay, AskingTransport } from "./answerRelay.js";
import { errorEnvelope } from "./jsonRpc.js";
import type { ListNotices } from "./listNotices.js";
import { PendingRequestIds } from "./pendingRequestIds.js";
import type { DirectoryEntry, DirectoryListener, SessionDirectory, SessionRecord } from "./sessionDirectory.js";

export interface SessionLimits {
  /** Sessions this replica holds at most. */
  total: number;
  /** Sessions one principal may start on this replica. */
  perPrincipal: number;
}

/** The SDK server of one session on this replica, and how it applies the session's shared state. */
export interface SessionServer {
  readonly server: Server;
  /** What its agent is told on its GET stream here, or kept until one opens (`ListNotices`). */
  readonly notices: ListNotices;
  /** Applies the state as the directory holds it: the log level of the session's calls, the resources it hears about. */
  apply(state: SessionState): void;
  /** The session ended for good (not only dropped here): what it held upstream (`subscriptions`) is let go. */
  ended(sessionId: string, subscriptions: readonly string[]): void;
}

/** What a session's own requests (`logging/setLevel`, `resources/subscribe`, `resources/unsubscribe`) change. */
export interface SessionChanges {
  /**
   * Changes the session's state for every replica (recorded in the directory, then applied here
   * and broadcast). `prepare` runs first, only when this replica's copy of the state changes (the
   * upstream subscription). A refused change (`too_many_subscriptions`) throws before anything runs.
   */
  change(sessionId: string | undefined, change: SessionChange, prepare?: () => Promise<unknown>): Promise<void>;
}

/**
 * What a session is for: the virtual server and the environment as they are now, each by its name
 * and the sequence that created it (one deleted and created again under its name is another).
 */
export interface SessionTarget {
  readonly virtualServer: string;
  readonly created: number;
  readonly environment: string;
  /** 0 for the default environment, which is never created or deleted. */
  readonly environmentCreated: number;
}

/** Whether a session's record is for this target and principal: a session is served only to them. */
const recordFor = (record: SessionRecord, target: SessionTarget, principal: Principal): boolean =>
  record.virtualServer === target.virtualServer &&
  record.virtualServerCreated === target.created &&
  record.environment === target.environment &&
  record.environmentCreated === target.environmentCreated &&
  record.principalId === principal.id;

export interface Session {
  readonly id: string;
  readonly virtualServer: string;
  readonly environment: string;
  /** Who opened the session; every later request must come from the same principal. */
  readonly principal: Principal;
  /** The record as this replica last read or wrote it (its state applied to `server`). */
  readonly entry: DirectoryEntry;
  readonly transport: AskingTransport;
  readonly server: Server;
  readonly apply: (state: SessionState) => void;
  /** `SessionServer.ended`. */
  readonly ended: SessionServer["ended"];
  lastSeen: number;
  /** JSON-RPC request ids whose answers this replica has not finished. */
  readonly pendingIds: PendingRequestIds;
  /** The list changes told on its GET stream here, or kept until one opens. */
  readonly notices: ListNotices;
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
export class SessionTable implements SessionChanges, DirectoryListener {
  readonly #sessions = new Map<string, Session>();
  /** Each principal's sessions here, least recently used first: what admission counts (`mustAdmit`). */
  readonly #owned = new OwnedItems<Session>();
  readonly #adopting = new Map<string, Promise<Session | undefined>>();
  /** Each session's changes under way here, chained (`change`): the last one's settling. */
  readonly #changing = new Map<string, Promise<void>>();
  /** When each virtual server last changed (`notifyToolsChanged`): its event's time, by the registry's clock. */
  readonly #changedAt = new Map<string, number>();
  readonly #logger: Logger;
  readonly #idleMs: number;
  readonly #sweeper: NodeJS.Timeout;
  readonly #limits: SessionLimits;
  #directory: SessionDirectory | undefined;
  #answers!: Pick<AnswerRelay, "asking" | "route">;

  constructor(logger: Logger, idleMs: number, limits: SessionLimits) {
    this.#logger = logger;
    this.#idleMs = idleMs;
    this.#limits = limits;
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(idleMs, 60_000)).unref();
  }

  /** Without a directory (a unit test), sessions live on this replica only. */
  attach(directory: SessionDirectory | undefined, answers: Pick<AnswerRelay, "asking" | "route">): void {
    this.#directory = directory;
    this.#answers = answers;
  }

  /** The transport of a session this replica holds: where an answer relayed from another replica goes. */
  transportOf(id: string): AskingTransport | undefined {
    return this.#sessions.get(id)?.transport;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Whether this replica holds the session (else finding it is a look-up in the directory, on the bus). */
  holds(id: string): boolean {
    return this.#sessions.has(id);
  }

  /** Refuses a session past this replica's limits: a new one (initialize), or one taken over from another replica. */
  mustAdmit(principal: Principal): void {
    const own = this.#owned.count(principal.id);
    if (own >= this.#limits.perPrincipal) {
      throw new ManifoldError(
        "too_many_sessions",
        `${principal.consumer ? `consumer '${principal.consumer}'` : "this caller"} already holds ${own} sessions on this gateway replica (at most ${this.#limits.perPrincipal}); end one with DELETE or let one expire`,
      );
    }
    if (this.#sessions.size >= this.#limits.total && !this.#makeRoom(own)) {
      throw new ManifoldError("at_capacity", `this gateway replica holds its maximum of ${this.#limits.total} sessions; initialize on another replica`);
    }
  }

  /**
   * A full replica is shared: the caller holding the most sessions, when that is more than one past
   * this caller's, gives up its idlest. Before, ten consumers at their own limit (1,000 each) held
   * every place of a replica (10,000), and every other tenant's initialize was `at_capacity`.
   */
  #makeRoom(own: number): boolean {
    const largest = this.#owned.largest();
    if (!largest || largest.count <= own + 1) return false;
    const idlest = this.#owned.first(largest.owner);
    if (!idlest) return false;
    this.#logger.info({ session: idlest.id.slice(0, 8) }, "session ended to make room for another caller on a full replica");
    // Ended, as a DELETE ends it: only dropped here, it would be taken over again from the directory.
    void this.closeLocal(idlest.id);
    // Its holds are let go once it is gone from the directory: kept there, another replica serves it on.
    if (!this.#directory) this.#ended(idlest);
    else void this.#directory.remove(idlest.id).then((deleted) => deleted && this.#ended(idlest), () => undefined);
    return true;
  }

  /**
   * Starts a session with the client's initialize request and answers it. The request is kept for
   * the session's life (here, and in the directory for other replicas to replay), so it is bounded.
   */
  async open(target: SessionTarget, principal: Principal, sessionServer: SessionServer, request: FastifyRequest): Promise<Response> {
    // Its size was bounded by the seam (`mustBeKeptSize`), before the SDK parsed it.
    const { virtualServer, created: virtualServerCreated, environment, environmentCreated } = target;
    const record: SessionRecord = { virtualServer, virtualServerCreated, environment, environmentCreated, principalId: principal.id, initialize: request.body };
    const { transport, unrecorded } = this.#transport(randomUUID, principal, sessionServer, { record, revision: 0 });
    await sessionServer.server.connect(transport);
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
   * This replica's session with that id, if it belongs to this virtual server (the one that now
   * holds the name) and principal: a live one, or one adopted from the directory. Another
   * principal's session, or a deleted virtual server's, is reported as unknown: its id must not be confirmed.
   * A live one is answered at once, not in a promise: each request of a 2025 session looks it up,
   * and the await of an async look-up cost every one of them a promise and a turn.
   */
  find(id: string, target: SessionTarget, principal: Principal, createServer: () => SessionServer): Session | undefined | Promise<Session | undefined> {
    const local = this.#sessions.get(id);
    if (local) return this.#served(local, target, principal);
    return this.#adopt(id, target, principal, createServer).then((adopted) => adopted && this.#served(adopted, target, principal));
  }

  /** The session, if it is served to this target and principal, kept alive for it (here and in the directory). */
  #served(session: Session, target: SessionTarget, principal: Principal): Session | undefined {
    if (!recordFor(session.entry.record, target, principal)) return undefined;
    session.lastSeen = Date.now();
    // Kept in the order last seen, so the idlest is the first (a Set's delete and add, constant).
    this.#owned.touch(session.principal.id, session);
    this.#directory?.touch(session.id, session.entry);
    return session;
  }

  /** DELETE on another replica: this replica's copy ends too. */
  closed(id: string): void {
    void this.closeLocal(id);
  }

  /** Another replica changed a session's state: a copy held (or being adopted) here applies it. */
  async changed(id: string, revision: number, notice?: Pick<SessionChanged, "state" | "holders">): Promise<void> {
    if (this.#sessions.has(id) || this.#adopting.has(id)) await this.#refresh(id, revision, notice);
  }

  /**
   * One change of a session at a time on this replica, in arrival order: each rewrites the record
   * decided on its last revision, so changes sent at once (a client's subscriptions in a
   * `Promise.all`, a 2025-03-26 batch) lost the race to each other, and past the directory's 5
   * attempts failed as `bus_unavailable` (4 of a real client's 13 at once, 16 of a batch of 30),
   * their upstream subscriptions made and never recorded. Another replica's change still races, rarely.
   * What a change needs upstream (`prepare`) is asked before it waits its turn: a subscription to an
   * upstream slow to answer holds its own request, not the session's other changes (a level set
   * behind one waited its 3 s, its connection held and counted nowhere).
   */
  async change(sessionId: string | undefined, change: SessionChange, prepare?: () => Promise<unknown>): Promise<void> {
    const session = sessionId === undefined ? undefined : this.#sessions.get(sessionId);
    const directory = this.#directory;
    if (!session || !directory) throw new ManifoldError("session_not_found", "this request's session is not held here");
    // Refused on this replica's copy first (the cap), so a refused subscription costs no upstream request.
    if (changeSession(session.entry.record, change) && prepare) await prepare();
    await this.#inTurn(session.id, async () => {
      const entry = await directory.change(session.id, (record) => changeSession(record, change));
      if (!entry) throw new ManifoldError("session_not_found", `session '${session.id}' does not exist or has expired`);
      this.#applyEntry(session, entry);
    });
  }

  /** Runs `step` once the session's changes before it here have settled. */
  #inTurn(id: string, step: () => Promise<void>): Promise<void> {
    const done = (this.#changing.get(id) ?? Promise.resolve()).then(step);
    const settled = done.catch(() => undefined);
    this.#changing.set(id, settled);
    void settled.then(() => {
      if (this.#changing.get(id) === settled) this.#changing.delete(id);
    });
    return done;
  }

  /**
   * Answers the cancelled requests of this session that the SDK holds here: the 1.x SDK sends
   * nothing for a request whose handler was aborted, so its stream (and the caller's place in
   * `GATEWAY_MAX_CALLS_PER_PRINCIPAL`) stayed open for good. A request the fast path serves, or
   * one already answered, is not the SDK's to answer: the attempt is dropped.
   */
  #answerCancelled(session: Session, ids: readonly (string | number)[]): void {
    for (const id of ids) {
      if (!session.pendingIds.has(id)) continue;
      const envelope = errorEnvelope("upstream_error", "the request was cancelled", "legacy", id);
      Object.assign(envelope.error.data, { cancelled: true });
      session.transport.send(envelope as JSONRPCMessage).catch(() => undefined);
    }
  }

  /**
   * Hands a request of a live session to its SDK transport; then answers the requests its
   * `notifications/cancelled` named (`cancelled`), once the SDK has taken the message: a request a
   * 2025-03-26 batch cancels itself has a stream only from then on. Answered before, the attempt was
   * dropped, and the batch's POST was never answered, not even its headers (a ping is no call:
   * nothing bounded them, and 32 of one caller held every connection of a replica bounded to 32).
   */
  async handle(session: Session, request: FastifyRequest, reply: FastifyReply, authInfo?: AuthInfo, cancelled: readonly (string | number)[] = []): Promise<FastifyReply> {
    // The agent's answers go to the requests they answer, on whichever replica asked (`answerRelay.ts`).
    const post = request.method === "POST";
    const body = post ? this.#answers.route(session.id, session.transport, request.body) : request.body;
    if (post && body === undefined) return reply.code(202).send();
    const response = await session.transport.handleRequest(webRequest(request), { parsedBody: body, ...(authInfo ? { authInfo } : {}) });
    if (cancelled.length > 0) this.#answerCancelled(session, cancelled);
    if (request.method !== "GET") return reply.send(response);
    if (response.ok) session.notices.opened(new Promise((resolve) => reply.raw.once("close", resolve)));
    return sendWebResponse(reply, response, true);
  }

  /** Tells every local session of the virtual server that its tool list changed (`at`: the event's time). */
  notifyToolsChanged(virtualServer: string, at: number): void {
    this.#changedAt.set(virtualServer, at);
    for (const session of this.#sessions.values()) if (session.virtualServer === virtualServer) session.notices.tell(["tools"]);
  }

  /** Tells the virtual server's sessions that its prompts and resources changed (sessions opened without them do not hear it). */
  notifyItemsChanged(virtualServer: string): void {
    for (const session of this.#sessions.values()) if (session.virtualServer === virtualServer) session.notices.tell(["items"]);
  }

  /**
   * Tells a consumer's local sessions that their lists may have changed: its groups changed, and with
   * them which grants admit it and what they deny. Before, only `virtual-server.*` events were told,
   * and a session kept a list that was no longer its caller's (its GET stream, cut as its access
   * changed, heard nothing when its agent opened it again).
   */
  notifyConsumerChanged(consumer: string): void {
    // Told again on the next stream too: the open one is cut when the change narrowed or widened its access (`AdmittedStreams`), maybe before it was written.
    for (const session of this.#sessions.values()) if (session.principal.consumer === consumer) session.notices.tell(["tools", "items"], { again: true });
  }

  /** Ends the sessions of a consumer deleted meanwhile (their streams with them). */
  async closeConsumer(consumer: string): Promise<void> {
    const closing = [...this.#sessions.values()].filter((s) => s.principal.consumer === consumer);
    await Promise.all(closing.map((s) => this.closeLocal(s.id)));
  }

  async closeVirtualServer(virtualServer: string): Promise<void> {
    this.#changedAt.delete(virtualServer);
    const closing = [...this.#sessions.values()].filter((s) => s.virtualServer === virtualServer);
    await Promise.all(closing.map((s) => this.closeLocal(s.id)));
  }

  /** Drops this replica's copy of a session (it may live on elsewhere). */
  async closeLocal(id: string): Promise<void> {
    const session = this.#drop(id);
    if (!session) return;
    this.#directory?.forget(id);
    await session.server.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    clearInterval(this.#sweeper);
    await Promise.all([...this.#sessions.keys()].map((id) => this.closeLocal(id)));
  }

  /**
   * Another replica changed a session: the copy held here applies what it was told (the state
   * and holders: the rest of a record never changes), or reads the record again when it was not
   * told (a touch found its revision stale), unless it already has that revision. A session gone
   * from the directory is gone everywhere.
   */
  async #refresh(id: string, revision: number, notice?: Pick<SessionChanged, "state" | "holders">): Promise<void> {
    const adopting = this.#adopting.get(id);
    if (adopting) await adopting.catch(() => undefined);
    const session = this.#sessions.get(id);
    if (!session || session.entry.revision >= revision) return;
    if (notice) {
      const { state, holders } = notice;
      return this.#applyEntry(session, { record: { ...session.entry.record, holders, logLevel: state.logLevel, subscriptions: state.subscriptions }, revision });
    }
    if (!this.#directory) return;
    const entry = await this.#directory.lookup(id).catch(() => null);
    if (entry === undefined) await this.closeLocal(id);
    else if (entry) this.#applyEntry(session, entry);
  }

  /** Takes the session out of this replica's table and its principal's count. */
  #drop(id: string): Session | undefined {
    const session = this.#sessions.get(id);
    if (!session) return undefined;
    this.#sessions.delete(id);
    this.#owned.delete(session.principal.id, session);
    return session;
  }

  #applyEntry(session: Session, entry: DirectoryEntry): void {
    if (entry.revision <= session.entry.revision) return;
    session.entry.record = entry.record;
    session.entry.revision = entry.revision;
    session.apply(entry.record);
  }

  #transport(generateId: () => string, principal: Principal, { server, apply, ended, notices }: SessionServer, entry: DirectoryEntry) {
    const { virtualServer, environment } = entry.record;
    let failure: unknown;
    const transport: AskingTransport = this.#answers.asking({
      sessionIdGenerator: generateId,
      onsessioninitialized: async (id) => {
        this.#drop(id);
        const session: Session = { id, virtualServer, environment, principal, entry, transport, server, apply, ended, lastSeen: Date.now(), pendingIds: new PendingRequestIds(), notices };
        this.#sessions.set(id, session);
        this.#owned.add(principal.id, session);
        // An adopted session's entry was read from the directory; a new one is written there now.
        if (entry.revision > 0) return;
        // Thrown here, the SDK would answer JSON-RPC -32700 "Parse error" with the cause's text;
        // the caller reports it as what it is (`bus_unavailable`) instead.
        // The local copy is what was written (this replica named as its holder): a touch writes it back.
        await this.#directory?.record(id, entry.record).then(
          (recorded) => void Object.assign(entry, recorded),
          (error: unknown) => void (failure = error),
        );
      },
      // DELETE: the session ends on every replica.
      onsessionclosed: async (id) => {
        const session = this.#drop(id);
        if (session) this.#ended(session);
        await this.#directory?.remove(id);
      },
    });
    return { transport, unrecorded: () => failure };
  }

  async #adopt(id: string, target: SessionTarget, principal: Principal, createServer: () => SessionServer): Promise<Session | undefined> {
    let pending = this.#adopting.get(id);
    if (!pending) {
      pending = (async () => {
        const found = await this.#directory?.lookup(id);
        // Before, the virtual server was matched by name: one deleted and created again under it adopted the old one's sessions.
        const matches = found && recordFor(found.record, target, principal);
        // Held here from now on, it counts here: the caps apply as to an initialize (taken over one
        // by one, a caller's sessions on every other replica once piled up on this one past both).
        if (matches) this.mustAdmit(principal);
        // Named among its holders first, so every later change reaches this copy; adopted as the record now is.
        const entry = matches ? await this.#directory?.hold(id) : undefined;
        const record = entry?.record;
        if (!entry || !record) return undefined;
        const sessionServer = createServer();
        const { server } = sessionServer;
        const { transport } = this.#transport(() => id, principal, sessionServer, entry);
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
        // What the session set since initialize (its log level, its subscriptions) holds here too.
        sessionServer.apply(record);
        const adopted = this.#sessions.get(id);
        // Changed since the session's record was last written (event times are the registry's clock,
        // the record's the bus's): the replica that held it may have died before telling its agent,
        // so its stream here tells it again. Events replayed at this replica's start are older.
        if (adopted && (this.#changedAt.get(record.virtualServer) ?? 0) > (found?.writtenAt ?? Infinity)) adopted.notices.tell(["tools", "items"]);
        this.#logger.debug({ session: id.slice(0, 8) }, "adopted session from the directory");
        return adopted;
      })().finally(() => this.#adopting.delete(id));
      this.#adopting.set(id, pending);
    }
    return pending;
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#idleMs;
    for (const session of this.#sessions.values()) {
      if (session.lastSeen >= cutoff) continue;
      void this.closeLocal(session.id);
      // Idle here; gone everywhere unless another replica kept it alive (`expire` reads its record).
      if (!this.#directory) this.#ended(session);
      else void this.#directory.expire(session.id).then((gone) => gone && this.#ended(session));
    }
  }

  /** Ended for good (DELETE, expired, made room for another caller): not when only this replica lets its copy go. */
  #ended(session: Session): void {
    session.ended(session.id, session.entry.record.subscriptions ?? []);
  }
}
