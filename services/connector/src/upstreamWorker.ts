import { BusHeader, Subjects, connectorQueue, type BusRole, type HealthReport } from "@manifold/contracts";
import { answerable, type Msg, type NatsConnection } from "@manifold/bus";
import { allowedPassthrough, type UpstreamState } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { Subscription } from "@nats-io/transport-node";
import { CallHeartbeats } from "./callHeartbeats.js";
import type { RoundsOut } from "./roundsOut.js";
import { CircuitBreaker } from "./circuitBreaker.js";
import { HeldCall } from "./heldCall.js";
import type { ScopedSecrets } from "@manifold/contracts";
import { Semaphore } from "./semaphore.js";
import { SessionPool, type PoolOptions } from "./sessionPool.js";
import { ToolShares } from "./toolShares.js";
import type { ConnectorMetrics } from "./metrics.js";
import { budgetOf, fitting, mustBeObtainedFor, passthroughOf } from "./requestBounds.js";
import { serveTaskRequest, type TaskRequestContext } from "./taskRequests.js";
import { TaskRounds } from "./taskRounds.js";
import { serveUpstreamRequests } from "./upstreamRequests.js";
import { UpstreamCalls, type RunningCalls } from "./upstreamCalls.js";
import { UpstreamDiscovery } from "./upstreamDiscovery.js";
import { UpstreamHealth } from "./upstreamHealth.js";
import { SILENT_PAUSE_MAX_MS, UpstreamLiveness } from "./upstreamLiveness.js";

export interface WorkerOptions {
  replica: string;
  callTimeoutMs: number;
  connectTimeoutMs: number;
  maxConcurrency: number;
  maxQueue: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  heartbeatMs: number;
  /** How long a ping may go unanswered after a timeout before the upstream is `down` (`UpstreamLiveness`). */
  pingTimeoutMs: number;
  /** How often the upstream's tools are listed again for drift detection; 0: only on list_changed and reconnect. */
  rediscoverMs: number;
  /** The share of the upstream's slots one tool may hold (0 < share ≤ 1). */
  toolShare: number;
  /** What a session may send of its own per second, unless the upstream's registration says. */
  inboundPerSecond: number;
  pool: Omit<PoolOptions, "breakerThreshold" | "breakerCooldownMs" | "probeTimeoutMs" | "connectTimeoutMs">;
  /** Each caller's rounds of questions out on this replica: one bound over every upstream. */
  rounds: RoundsOut;
  /** Every upstream's calls running on the replica's bus connection. */
  running: RunningCalls;
}

/**
 * Serves one upstream on the bus for this replica: `call` and `list` in the upstream's
 * queue group (replicas share the work); cancellations arrive through `cancel`. Calls
 * (`UpstreamCalls`), the upstream's lists (`UpstreamDiscovery`) and its health reports
 * (`UpstreamHealth`) share its sessions, its breaker and its tools' shares, made here.
 */
export class UpstreamWorker {
  readonly upstream: UpstreamState;
  readonly #logger: Logger;
  readonly #pool: SessionPool;
  readonly #calls: UpstreamCalls;
  readonly #discovery: UpstreamDiscovery;
  readonly #health: UpstreamHealth;
  readonly #liveness: UpstreamLiveness;
  readonly #beats: CallHeartbeats;
  readonly #subscriptions: Subscription[] = [];

  constructor(
    nc: NatsConnection,
    upstream: UpstreamState,
    secrets: ScopedSecrets,
    logger: Logger,
    options: WorkerOptions,
    publishHealth: (report: HealthReport) => void,
    metrics: ConnectorMetrics,
  ) {
    this.upstream = upstream;
    this.#logger = logger;
    const target = `upstream '${upstream.name}'`;
    const url = upstream.transport.type === "stdio" ? undefined : upstream.transport.url;
    const timeoutMs = upstream.options.callTimeoutMs ?? options.callTimeoutMs;
    const allowed = allowedPassthrough(upstream);
    const slots = upstream.options.maxConcurrency ?? options.maxConcurrency;
    const semaphore = new Semaphore(slots, options.maxQueue, target);
    const breaker = new CircuitBreaker(options.breakerThreshold, options.breakerCooldownMs);
    const { breakerThreshold, breakerCooldownMs } = options;
    const tools = new ToolShares({ upstream: upstream.name, slots: Math.max(1, Math.floor(slots * options.toolShare)), maxQueue: options.maxQueue, breakerThreshold, breakerCooldownMs });
    // Half the connect budget for the era probe, so a silent stdio upstream still gets its initialize in time.
    const poolOptions = { ...options.pool, breakerThreshold, breakerCooldownMs, probeTimeoutMs: Math.max(options.connectTimeoutMs / 2, 1), connectTimeoutMs: options.connectTimeoutMs, maxAnswerBytes: nc.info?.max_payload, inboundPerSecond: upstream.options.inboundPerSecond ?? options.inboundPerSecond, plainPassthrough: new Set(upstream.options.plainPassthroughHeaders?.map((name) => name.toLowerCase())) };
    const pool = (this.#pool = new SessionPool(upstream.name, upstream.transport, secrets, logger, poolOptions, (state) => {
      this.#health.report();
      if (state !== "connected") return;
      // It answered a handshake: whatever timed out before, it answers now.
      this.#liveness.answered();
      // A reconnected upstream may have changed (a new release, a restarted process).
      this.#discovery.trigger();
      // It is back: its open circuit probes now, not at the end of the cooldown.
      breaker.reconnected(Date.now());
    }));
    const { replica, connectTimeoutMs } = options;
    // An HTTP upstream's silence is asked about as often as its session is tried again (`SessionPool`): a ping is cheap.
    const maxPauseMs = url === undefined ? SILENT_PAUSE_MAX_MS : breakerCooldownMs;
    const liveness = (this.#liveness = new UpstreamLiveness(
      (ms) => pool.shared.ping(ms),
      options.pingTimeoutMs,
      () => {
        this.#health.report();
        if (liveness.silent === undefined) this.#discovery.answersAgain();
      },
      maxPauseMs,
    ));
    const health = (this.#health = new UpstreamHealth({ upstream: upstream.name, replica, session: pool.shared, breaker, tools, liveness, heartbeatMs: options.heartbeatMs, publish: publishHealth, logger }));
    const discovery = (this.#discovery = new UpstreamDiscovery({ nc, upstream, target, session: pool.shared, timeoutMs, connectTimeoutMs, rediscoverMs: options.rediscoverMs, listed: (reason) => health.listed(reason), liveness, logger }));
    const beats = (this.#beats = new CallHeartbeats(nc, upstream.name));
    const calls = (this.#calls = new UpstreamCalls({ nc, upstream: upstream.name, replica, target, url, timeoutMs, connectTimeoutMs, allowed, pool, breaker, semaphore, tools, beats, rounds: options.rounds, running: options.running, health, liveness, metrics, logger }));

    // Every request that holds the upstream open takes one of its slots, fairly between callers.
    const slot = (msg: Msg, timeoutMs: number) => semaphore.acquire(timeoutMs, msg.headers?.get(BusHeader.caller) || undefined);
    // What a request about one of the upstream's tasks needs from this worker (`taskRequests.ts`).
    const taskContext: TaskRequestContext = {
      slot,
      target,
      timeoutMs,
      sessionFor: (raw, resource) => {
        mustBeObtainedFor(resource, url, target);
        const pooled = pool.sessionFor(passthroughOf(raw, upstream.name, allowed, target));
        if (!pooled.breaker) liveness.refuseIfUnreachable(target);
        return { session: pooled.session, release: pool.hold(pooled) };
      },
      hold: (msg, deadline) => new HeldCall(msg, { nc, upstream: upstream.name, replica, beats, deadline, cancellation: undefined, rounds: options.rounds }),
      release: (held) => held.release(),
      rounds: new TaskRounds(),
    };
    const queue = connectorQueue(upstream.name);
    // Only a request whose reply goes to the inbox of the role that sends it is served (`answerable`):
    // calls and task requests come from gateways, list requests from the registry.
    const serving = (from: BusRole, serve: (msg: Msg) => unknown) => (err: Error | null, msg: Msg) => {
      if (err) this.#subscriptionFailed(err);
      else if (answerable(msg, from)) void serve(msg);
    };
    this.#subscriptions.push(
      nc.subscribe(Subjects.upstreamCall(upstream.name), { queue, callback: serving("gateway", (msg) => calls.serve(msg)) }),
      nc.subscribe(Subjects.upstreamList(upstream.name), { queue, callback: serving("registry", (msg) => discovery.serveList(msg)) }),
      ...serveUpstreamRequests({
        nc,
        upstream: upstream.name,
        session: () => pool.shared,
        sessionFor: (raw, caller, resource) => {
          mustBeObtainedFor(resource, url, target);
          const pooled = pool.sessionFor(passthroughOf(raw, upstream.name, allowed, target), undefined, caller);
          return { session: pooled.session, release: pool.hold(pooled) };
        },
        budget: (msg) => budgetOf(msg.headers, timeoutMs), fitting: (a, w) => fitting(a, w, target, nc.info?.max_payload), slot, liveness, logger }),
      // This replica's own subject: a task lives in the upstream session that created it, which is here.
      nc.subscribe(Subjects.upstreamTasks(upstream.name, replica), {
        callback: serving("gateway", (msg) => serveTaskRequest(msg, taskContext)),
      }),
    );
    health.report(true);
  }

  /** Aborts the call with this id if this worker is running it. */
  cancel(callId: string): void {
    this.#calls.cancel(callId);
  }

  /** Ends the sessions opened with a token a gateway dropped (`SessionPool.dropCredential`). */
  dropCredential(fingerprint: string): number {
    return this.#pool.dropCredential(fingerprint);
  }

  async close(): Promise<void> {
    this.#health.close();
    this.#liveness.close();
    this.#discovery.close();
    // Drained, not dropped: a request already on its way here is still answered (or declined).
    // On a closed connection there is nothing left to drain, and closing must not fail for it.
    await Promise.all(this.#subscriptions.map((sub) => sub.drain().catch(() => undefined)));
    this.#calls.cancelAll();
    await this.#pool.close();
    this.#beats.close();
  }

  #subscriptionFailed(err: Error): void {
    this.#logger.error({ err }, "subscription failed");
  }
}
