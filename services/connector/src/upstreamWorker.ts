import { BusHeader, ManifoldError, Subjects, connectorQueue, type DiscoveryReport, type HealthReport, type ListReply } from "@manifold/contracts";
import { readHeaders, replyWithError, tooLargeMessage, type HeaderReader, type Msg, type NatsConnection } from "@manifold/bus";
import { allowedPassthrough, checkPassthrough, registrationHash, type UpstreamState } from "@manifold/domain";
import { Attr, extractTraceContext, SpanKind, traced, type Logger } from "@manifold/telemetry";
import { ProtocolError } from "@modelcontextprotocol/client";
import { headers as natsHeaders, type Subscription } from "@nats-io/transport-node";
import { CallHeartbeats } from "./callHeartbeats.js";
import { Cancellation } from "./cancellation.js";
import { CircuitBreaker } from "./circuitBreaker.js";
import type { ScopedSecrets } from "@manifold/contracts";
import { healthOf } from "./health.js";
import { HeldCall } from "./heldCall.js";
import { callLogOf } from "./callLog.js";
import { progressRelay } from "./callNotifications.js";
import { serveTaskRequest, taskModeOf, type TaskRequestContext } from "./taskRequests.js";
import { TaskRounds } from "./taskRounds.js";
import { TaskStatusRelay } from "./taskStatus.js";
import { Semaphore } from "./semaphore.js";
import { SessionPool, type PooledSession, type PoolOptions } from "./sessionPool.js";
import { ToolShares, type ToolShare } from "./toolShares.js";
import { ResultTooLarge, isHealthFailure, mapUpstreamError, safeReason } from "./upstreamErrors.js";
import type { ConnectorMetrics } from "./metrics.js";
import { serveUpstreamRequests } from "./upstreamRequests.js";
import { DiscoveryPacer } from "./discoveryPacer.js";


export interface WorkerOptions {
  replica: string;
  callTimeoutMs: number;
  connectTimeoutMs: number;
  maxConcurrency: number;
  maxQueue: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  heartbeatMs: number;
  /** How often the upstream's tools are listed again for drift detection; 0: only on list_changed and reconnect. */
  rediscoverMs: number;
  /** The share of the upstream's slots one tool may hold (0 < share ≤ 1). */
  toolShare: number;
  pool: Omit<PoolOptions, "breakerThreshold" | "breakerCooldownMs" | "probeTimeoutMs">;
}

/**
 * Serves one upstream on the bus for this replica: `call` and `list` in the upstream's
 * queue group (replicas share the work); cancellations arrive through `cancel`. Calls pass a circuit
 * breaker and a concurrency bound, then go to the session of their credential set.
 */
export class UpstreamWorker {
  readonly upstream: UpstreamState;
  readonly #nc: NatsConnection;
  readonly #logger: Logger;
  readonly #options: WorkerOptions;
  readonly #pool: SessionPool;
  readonly #semaphore: Semaphore;
  /** The upstream's breaker: failures of its shared session, never a single caller's or a single tool's. */
  readonly #breaker: CircuitBreaker;
  readonly #tools: ToolShares;
  readonly #allowed: ReadonlySet<string>;
  readonly #inFlight = new Map<string, Cancellation>();
  readonly #publishHealth: (report: HealthReport) => void;
  readonly #metrics: ConnectorMetrics;
  readonly #subscriptions: Subscription[] = [];
  readonly #beats: CallHeartbeats;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #rediscover: NodeJS.Timeout | undefined;
  readonly #discovery = new DiscoveryPacer(() => this.#reportDiscovery());
  /** Why the last discovery could not list the upstream; undefined when it could. */
  #listingFailed: string | undefined;
  readonly #target: string;
  readonly #timeoutMs: number;
  readonly #registration: string;
  #lastHealth: string | undefined;
  /** What a request about one of the upstream's tasks needs from this worker (`taskRequests.ts`). */
  readonly #taskContext: TaskRequestContext;

  /** A 2025 upstream's task status notifications, to the gateway session that created each task. */
  readonly #taskStatus: TaskStatusRelay;
  /** On the answer to a task-augmented call: where its task's requests go. */
  readonly #replicaHeaders: ReturnType<typeof natsHeaders>;

  constructor(
    nc: NatsConnection,
    upstream: UpstreamState,
    secrets: ScopedSecrets,
    logger: Logger,
    options: WorkerOptions,
    publishHealth: (report: HealthReport) => void,
    metrics: ConnectorMetrics,
  ) {
    this.#metrics = metrics;
    this.upstream = upstream;
    this.#nc = nc;
    this.#logger = logger;
    this.#options = options;
    this.#publishHealth = publishHealth;
    this.#target = `upstream '${upstream.name}'`;
    this.#timeoutMs = upstream.options.callTimeoutMs ?? options.callTimeoutMs;
    this.#registration = registrationHash(upstream);
    this.#allowed = allowedPassthrough(upstream);
    const slots = upstream.options.maxConcurrency ?? options.maxConcurrency;
    this.#semaphore = new Semaphore(slots, options.maxQueue, this.#target);
    this.#breaker = new CircuitBreaker(options.breakerThreshold, options.breakerCooldownMs);
    const { breakerThreshold, breakerCooldownMs } = options;
    this.#tools = new ToolShares({ upstream: upstream.name, slots: Math.max(1, Math.floor(slots * options.toolShare)), maxQueue: options.maxQueue, breakerThreshold, breakerCooldownMs });
    // Half the connect budget for the era probe, so a silent stdio upstream still gets its initialize in time.
    const poolOptions = { ...options.pool, breakerThreshold, breakerCooldownMs, probeTimeoutMs: Math.max(options.connectTimeoutMs / 2, 1), maxAnswerBytes: nc.info?.max_payload };
    this.#pool = new SessionPool(upstream.name, upstream.transport, secrets, logger, poolOptions, (state) => {
      this.#reportHealth();
      // A reconnected upstream may have changed (a new release, a restarted process).
      if (state === "connected") this.#discovery.trigger();
    });
    this.#pool.shared.toolsChanged = () => this.#discovery.trigger();
    this.#rediscover = options.rediscoverMs > 0 ? setInterval(() => this.#discovery.trigger(true), options.rediscoverMs).unref() : undefined;
    this.#heartbeat = setInterval(() => this.#reportHealth(true), options.heartbeatMs).unref();
    this.#beats = new CallHeartbeats(nc);

    this.#taskContext = {
      target: this.#target,
      timeoutMs: this.#timeoutMs,
      sessionFor: (raw) => this.#pool.sessionFor(this.#passthrough(raw)).session,
      hold: (msg, deadline) => {
        this.#beats.hold(msg);
        return new HeldCall(msg, { nc, upstream: upstream.name, replica: options.replica, beats: this.#beats, deadline, cancellation: undefined });
      },
      release: (held) => this.#beats.release(held.reply),
      rounds: new TaskRounds(),
    };
    this.#taskStatus = new TaskStatusRelay((subject, data) => nc.publish(subject, data));
    const queue = connectorQueue(upstream.name);
    this.#subscriptions.push(
      nc.subscribe(Subjects.upstreamCall(upstream.name), { queue, callback: (err, msg) => (err ? this.#subscriptionFailed(err) : this.#onCall(msg)) }),
      nc.subscribe(Subjects.upstreamList(upstream.name), { queue, callback: (err, msg) => (err ? this.#subscriptionFailed(err) : void this.#onList(msg)) }),
      serveUpstreamRequests({ nc, upstream: upstream.name, session: () => this.#pool.shared, budget: (msg) => this.#budget(msg.headers), fitting: (a, w) => this.#fitting(a, w), logger }),
      // This replica's own subject: a task lives in the upstream session that created it, which is here.
      nc.subscribe(Subjects.upstreamTasks(upstream.name, options.replica), {
        callback: (err, msg) =>
          err ? this.#subscriptionFailed(err) : void serveTaskRequest(msg, this.#taskContext),
      }),
    );
    this.#replicaHeaders = natsHeaders();
    this.#replicaHeaders.set(BusHeader.replica, options.replica);
    this.#reportHealth(true);
  }

  /** Aborts the call with this id if this worker is running it. */
  cancel(callId: string): void {
    this.#inFlight.get(callId)?.cancel();
  }

  /** Ends the sessions opened with a token a gateway dropped (`SessionPool.dropCredential`). */
  dropCredential(fingerprint: string): number {
    return this.#pool.dropCredential(fingerprint);
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    clearInterval(this.#rediscover);
    this.#discovery.close();
    // Drained, not dropped: a request already on its way here is still answered (or declined).
    // On a closed connection there is nothing left to drain, and closing must not fail for it.
    await Promise.all(this.#subscriptions.map((sub) => sub.drain().catch(() => undefined)));
    for (const call of this.#inFlight.values()) call.cancel();
    await this.#pool.close();
    this.#beats.close();
  }

  /** The time this call may still take: the caller's budget, capped by the upstream's. */
  #budget(headers: HeaderReader | undefined): number {
    const requested = Number(headers?.get(BusHeader.timeoutMs));
    return requested > 0 ? Math.min(requested, this.#timeoutMs) : this.#timeoutMs;
  }

  #onCall(msg: Msg): void {
    const attributes = () => ({
      [Attr.messagingSystem]: "nats",
      [Attr.messagingDestination]: msg.subject,
      [Attr.messagingOperation]: "process",
      [Attr.upstream]: this.upstream.name,
    });
    // Read once here: nats.js's own decoding of them is never triggered on this path.
    const headers = readHeaders(msg);
    void traced(`process ${msg.subject}`, SpanKind.CONSUMER, attributes, () => this.#call(msg, headers), extractTraceContext(headers)).catch(() => undefined);
  }

  /**
   * Fails fast while the circuit a call would go through is open; the reason is that circuit's own.
   * Returns the breaker when this call is its probe (to be released if the call ends without a verdict).
   */
  #admit(breaker: CircuitBreaker, what: string): CircuitBreaker | undefined {
    if (breaker.allow(Date.now())) return breaker.state === "half-open" ? breaker : undefined;
    const reason = breaker.lastReason ? `: ${breaker.lastReason}` : "";
    throw new ManifoldError("upstream_unavailable", `${what} is unavailable (circuit open after ${breaker.failures} consecutive failures${reason})`, {
      circuit: "open",
    });
  }

  async #call(msg: Msg, headers: HeaderReader): Promise<void> {
    const started = Date.now();
    const budget = this.#budget(headers);
    const remaining = () => Math.max(budget - (Date.now() - started), 1);
    const callId = headers.get(BusHeader.callId) || undefined;
    const cancellation = callId ? new Cancellation() : undefined;
    if (callId && cancellation) this.#inFlight.set(callId, cancellation);
    const tool = headers.get(BusHeader.tool) || "tool";
    const taskHeader = headers.get(BusHeader.task);
    const taskMode = taskModeOf(taskHeader);
    let releaseTool: (() => void) | undefined;
    this.#beats.hold(msg, headers);
    const held = new HeldCall(msg, { nc: this.#nc, upstream: this.upstream.name, replica: this.#options.replica, beats: this.#beats, deadline: started + budget, cancellation }, headers);
    // Only a call whose agent may be asked something carries the relay (and declares it upstream).
    const interaction = held.capabilities ? { ask: held.ask, capabilities: held.capabilities } : undefined;
    let release: (() => void) | undefined;
    let pooled: PooledSession | undefined;
    let share: ToolShare | undefined;
    let errorCode: string | undefined;
    let probing: CircuitBreaker | undefined;
    let probingTool: CircuitBreaker | undefined;
    // What a failure says: nothing before the call is admitted (circuits, shares and queues are
    // our own bounds), then about the session (connecting), then about the call itself.
    let phase: "admission" | "connecting" | "calling" = "admission";
    // Who calls, as the gateway vouches: slots and pass-through sessions are shared fairly between callers.
    const caller = headers.get(BusHeader.caller) || undefined;
    try {
      // A task lives on the session that created it, which task requests find by pass-through headers
      // alone. (A call that cannot ask for roots looks up nothing more.)
      const partition = held.sessionPartition && !taskHeader ? held.sessionPartition : undefined;
      pooled = this.#pool.sessionFor(this.#passthrough(headers.get(BusHeader.upstreamHeaders)), partition, caller);
      probing = this.#admit(pooled.breaker ?? this.#breaker, pooled.breaker ? `${this.#target} (this caller's session)` : this.#target);
      share = this.#tools.of(tool);
      // On a caller's own session its breaker already covers the tool.
      if (!pooled.breaker) probingTool = this.#admit(share.breaker, `tool '${tool}' of ${this.#target}`);
      // A free slot and an open session are the common case: taken without awaiting anything.
      const slot = share.slots.acquire(remaining(), caller);
      releaseTool = typeof slot === "function" ? slot : await slot;
      const upstreamSlot = this.#semaphore.acquire(remaining(), caller);
      release = typeof upstreamSlot === "function" ? upstreamSlot : await upstreamSlot;
      phase = "connecting";
      const session = pooled.session;
      if (!session.connected) await session.ready(Math.min(remaining(), this.#options.connectTimeoutMs));
      const progressSubject = headers.get(BusHeader.progressSubject) || undefined;
      const onprogress = progressSubject ? progressRelay(this.#nc, progressSubject) : undefined;
      const log = callLogOf(headers, this.#nc);
      const attributes = () => ({ [Attr.mcpMethod]: "tools/call", [Attr.toolName]: tool, [Attr.upstream]: this.upstream.name });
      phase = "calling";
      const result = await traced(`tools/call ${tool}`, SpanKind.CLIENT, attributes, async () => {
        try {
          return await session.callTool(tool, msg.string(), { timeoutMs: remaining(), budget, cancellation, onprogress, interaction, log, task: taskMode, maxResultBytes: this.#nc.info?.max_payload });
        } catch (error) {
          if (error instanceof ResultTooLarge) throw this.#tooLarge(`${this.#target} returned more than ${error.maxBytes} bytes for '${tool}'`, error.received, error.maxBytes);
          // A JSON-RPC error keeps its code on the span; anything else (library or OS text, which may quote a
          // value) is mapped here, inside the span, so the span records the sanitised text (`cause` keeps the original).
          throw cancellation?.cancelled || error instanceof ProtocolError ? error : mapUpstreamError(error, this.#target, budget);
        }
      });
      (pooled.breaker ?? this.#breaker).success();
      if (!pooled.breaker) this.#tools.succeeded(share);
      if (taskMode) this.#taskStatus.watch(session, headers.get(BusHeader.taskStatus) || undefined, result);
      held.respond(this.#fitting(result, tool), taskMode ? this.#replicaHeaders : undefined);
    } catch (error) {
      if (cancellation?.cancelled) {
        errorCode = "cancelled";
        held.fail(new ManifoldError("upstream_error", `${this.#target} call was cancelled`, { cancelled: true }));
      } else {
        const mapped = mapUpstreamError(error, this.#target, budget);
        errorCode = mapped.code;
        if (phase !== "admission" && isHealthFailure(mapped)) {
          this.#countFailure(pooled!, share!, mapped, phase);
          this.#logger.warn({ code: mapped.code, reason: mapped.message }, "call failed");
        }
        held.fail(mapped);
        throw mapped;
      }
    } finally {
      this.#metrics.call(this.upstream.name, (Date.now() - started) / 1000, errorCode);
      release?.();
      releaseTool?.();
      probing?.release();
      probingTool?.release();
      // Only this call's entry: another call under the same id (a caller's reuse) keeps its own.
      if (callId && this.#inFlight.get(callId) === cancellation) this.#inFlight.delete(callId);
      this.#beats.release(held.reply);
      this.#reportHealth();
    }
  }

  /**
   * Where a failure counts: everything on a caller's own session against that session's breaker
   * only; on the shared session a timeout of the call against the tool (a slow tool is not a
   * down upstream), anything else against the upstream.
   */
  #countFailure(pooled: PooledSession, share: ToolShare, error: ManifoldError, phase: "connecting" | "calling"): void {
    const now = Date.now();
    if (pooled.breaker) pooled.breaker.failure(now, error.message);
    else if (phase === "calling" && error.code === "upstream_timeout") this.#tools.failed(share, now, error.message);
    else this.#breaker.failure(now, error.message);
  }

  /** An answer as the reply's bytes, or a clear error when it is more than one bus message may carry. */
  #fitting(answer: string, what: string): Uint8Array {
    // Buffer.from, not TextEncoder: a slice of a shared pool, not a new allocation per call.
    const bytes = Buffer.from(answer);
    const maxBytes = this.#nc.info?.max_payload;
    if (maxBytes !== undefined && bytes.length > maxBytes) throw this.#tooLarge(`${this.#target} returned ${bytes.length} bytes for '${what}'`, bytes.length, maxBytes);
    return bytes;
  }

  #tooLarge(answered: string, bytes: number, maxBytes: number): ManifoldError {
    return new ManifoldError("payload_too_large", tooLargeMessage(answered, maxBytes), { bytes, maxBytes });
  }

  async #reportDiscovery(): Promise<void> {
    try {
      const shared = this.#pool.shared;
      let listed: ListReply;
      try {
        listed = await this.#listAll(this.#options.connectTimeoutMs);
      } catch (error) {
        this.#listed(safeReason(error));
        throw error;
      }
      this.#listed(undefined);
      const era = shared.protocolVersion;
      const report: DiscoveryReport = { upstream: this.upstream.name, registration: this.#registration, ...listed, ...(era ? { protocolVersion: era } : {}) };
      await this.#nc.request(Subjects.registryDiscovered, this.#fitting(JSON.stringify(report), "tools/list"), { timeout: 10_000 });
    } catch (err) {
      // Drift goes unseen while the list cannot be reported: that an operator must hear about.
      if (err instanceof ManifoldError && err.code === "payload_too_large") this.#logger.warn({ reason: err.message }, "tool list not reported");
      else this.#logger.debug({ reason: safeReason(err) }, "tool list not reported");
    }
  }

  /** Whether the last discovery could list the upstream (`reason`: why not); its health says so. */
  #listed(reason: string | undefined): void {
    if (reason === this.#listingFailed) return;
    this.#listingFailed = reason;
    this.#reportHealth();
  }

  /** Tools, and the prompts, resources and templates the upstream offers: what discovery records. */
  async #listAll(timeoutMs: number): Promise<ListReply> {
    const shared = this.#pool.shared;
    const listed = await shared.listTools(timeoutMs);
    const items = await shared.listItems(timeoutMs);
    // Tools come first: prompts and resources that would not fit in one bus message beside them are left out (and said so).
    const room = (this.#nc.info?.max_payload ?? Infinity) / 2;
    if (JSON.stringify(items).length > room) {
      this.#logger.warn({ maxBytes: room }, "prompts and resources not reported: their lists are too large for one bus message");
      return listed;
    }
    return { ...listed, ...items };
  }

  async #onList(msg: Msg): Promise<void> {
    const wanted = msg.headers?.get(BusHeader.registration);
    if (wanted && wanted !== this.#registration) {
      // Another registration than this worker's: the worker is about to be replaced, and the registry asks again.
      return replyWithError(msg, new ManifoldError("upstream_unavailable", `${this.#target} is being reconfigured on this connector`, { reason: "reconfiguring" }));
    }
    const budget = this.#budget(msg.headers);
    try {
      const listed = await this.#listAll(budget);
      msg.respond(this.#fitting(JSON.stringify(listed), "tools/list"));
    } catch (error) {
      replyWithError(msg, mapUpstreamError(error, this.#target, budget));
    }
  }

  #passthrough(raw: string | undefined): Record<string, string> | undefined {
    if (!raw) return undefined;
    let entry: unknown;
    try {
      entry = JSON.parse(raw);
    } catch {
      throw new ManifoldError("invalid_request", `pass-through headers for ${this.#target} are not valid JSON`);
    }
    return checkPassthrough(this.upstream.name, entry, this.#allowed);
  }

  #reportHealth(heartbeat = false): void {
    const { status, reason } = healthOf(this.#pool.shared, this.#breaker, this.#tools.troubled, this.#listingFailed);
    const key = `${status}|${reason ?? ""}|${this.#breaker.state}`;
    if (!heartbeat && key === this.#lastHealth) return;
    if (key !== this.#lastHealth) this.#logger.info({ status, reason, circuit: this.#breaker.state }, "upstream health");
    this.#lastHealth = key;
    this.#publishHealth({
      upstream: this.upstream.name,
      replica: this.#options.replica,
      status,
      ...(reason ? { reason } : {}),
      circuit: this.#breaker.state,
      ...(this.#pool.shared.protocolVersion ? { protocolVersion: this.#pool.shared.protocolVersion } : {}),
      at: new Date().toISOString(),
    });
  }

  #subscriptionFailed(err: Error): void {
    this.#logger.error({ err }, "subscription failed");
  }
}
