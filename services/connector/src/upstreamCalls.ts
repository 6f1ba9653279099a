import { BusHeader, ManifoldError, toolFromHeader } from "@manifold/contracts";
import { flushNow, readHeaders, type HeaderReader, type Msg, type NatsConnection } from "@manifold/bus";
import { Attr, extractTraceContext, SpanKind, traced, type Logger } from "@manifold/telemetry";
import { ProtocolError } from "@modelcontextprotocol/client";
import { headers as natsHeaders } from "@nats-io/transport-node";
import type { CallHeartbeats } from "./callHeartbeats.js";
import { Cancellation } from "./cancellation.js";
import type { CircuitBreaker } from "./circuitBreaker.js";
import { HeldCall } from "./heldCall.js";
import type { RoundsOut } from "./roundsOut.js";
import { callLogOf } from "./callLog.js";
import { progressRelayOf } from "./callNotifications.js";
import type { ConnectorMetrics } from "./metrics.js";
import type { Semaphore } from "./semaphore.js";
import type { PooledSession, SessionPool } from "./sessionPool.js";
import { budgetOf, fitting, mustBeObtainedFor, passthroughOf, tooLarge } from "./requestBounds.js";
import { taskModeOf } from "./taskRequests.js";
import { TaskStatusRelay } from "./taskStatus.js";
import type { ToolShare, ToolShares } from "./toolShares.js";
import type { UpstreamHealth } from "./upstreamHealth.js";
import type { UpstreamLiveness } from "./upstreamLiveness.js";
import { ResultTooLarge, isHealthFailure, mayBeOneRequests, mapUpstreamError, withheldIn } from "./upstreamErrors.js";
import { redactResult } from "./withheldValues.js";

export interface CallDeps {
  nc: NatsConnection;
  upstream: string;
  replica: string;
  /** `upstream '<name>'`, as errors name it. */
  target: string;
  /** The upstream's address (none for stdio): the only one a caller's own token may go to. */
  url: string | undefined;
  /** The upstream's call budget. */
  timeoutMs: number;
  connectTimeoutMs: number;
  /** The pass-through headers the upstream allows. */
  allowed: ReadonlySet<string>;
  pool: SessionPool;
  /** The upstream's breaker: failures of its shared session, never a single caller's or a single tool's. */
  breaker: CircuitBreaker;
  /** The upstream's slots, and each tool's share of them. */
  semaphore: Semaphore;
  tools: ToolShares;
  beats: CallHeartbeats;
  /** Each caller's rounds of questions out on this replica (shared by every upstream's calls). */
  rounds: RoundsOut;
  /** Every upstream's calls running on this replica's bus connection (the only one's answer is flushed at once). */
  running: RunningCalls;
  /** Told after every call, which may have changed it. */
  health: UpstreamHealth;
  /** Told when the shared session answered a call, or timed out; asked whether its last ping reached the upstream (`UpstreamLiveness`). */
  liveness: Pick<UpstreamLiveness, "answered" | "timedOut" | "refuseIfUnreachable">;
  metrics: ConnectorMetrics;
  logger: Logger;
}

/**
 * The calls running on one bus connection, whatever their upstream: while one runs alone, its
 * answer is written at once (`flushNow`) rather than after its bookkeeping at the end of the turn;
 * beside others, answers coalesce per turn. Counted per connection: one count per upstream let
 * every answer go out alone on a connector serving many upstreams a call each.
 */
export class RunningCalls {
  count = 0;
}

/**
 * The upstream's tools/call requests: they pass a circuit breaker and a concurrency bound, then go
 * to the session of their credential set; cancellations arrive through `cancel`.
 */
export class UpstreamCalls {
  readonly #deps: CallDeps;
  readonly #inFlight = new Map<string, Cancellation>();
  /** A 2025 upstream's task status notifications, to the gateway session that created each task. */
  readonly #taskStatus: TaskStatusRelay;

  constructor(deps: CallDeps) {
    this.#deps = deps;
    this.#taskStatus = new TaskStatusRelay((subject, data) => this.#deps.nc.publish(subject, data), deps.upstream);
  }

  /** On the answer to a task-augmented call: where its task's requests go (this replica, and the upstream connection that holds the task). */
  #taskHome(connection: string): ReturnType<typeof natsHeaders> {
    const home = natsHeaders();
    home.set(BusHeader.replica, this.#deps.replica);
    home.set(BusHeader.connection, connection);
    return home;
  }

  /** Aborts the call with this id if it runs here. */
  cancel(callId: string): void {
    this.#inFlight.get(callId)?.cancel();
  }

  cancelAll(): void {
    for (const call of this.#inFlight.values()) call.cancel();
  }

  /** One tools/call (`Subjects.upstreamCall`). */
  serve(msg: Msg): void {
    const attributes = () => ({
      [Attr.messagingSystem]: "nats",
      [Attr.messagingDestination]: msg.subject,
      [Attr.messagingOperation]: "process",
      [Attr.upstream]: this.#deps.upstream,
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
    const now = Date.now();
    if (breaker.allow(now)) return breaker.state === "half-open" ? breaker : undefined;
    const reason = breaker.lastReason ? `: ${breaker.lastReason}` : "";
    // Open: when its probe may go (half-open, a probe is under way: no time to name).
    const retryAfterMs = breaker.state === "open" ? { retryAfterMs: breaker.retryInMs(now) } : {};
    throw new ManifoldError("upstream_unavailable", `${what} is unavailable (circuit open after ${breaker.failures} consecutive failures${reason})`, {
      circuit: "open",
      ...retryAfterMs,
    });
  }

  async #call(msg: Msg, headers: HeaderReader): Promise<void> {
    const { nc, upstream, target, pool, breaker, tools, semaphore, beats, rounds } = this.#deps;
    const started = Date.now();
    const budget = budgetOf(headers, this.#deps.timeoutMs);
    const remaining = () => Math.max(budget - (Date.now() - started), 1);
    const callId = headers.get(BusHeader.callId) || undefined;
    const cancellation = callId ? new Cancellation() : undefined;
    if (callId && cancellation) this.#inFlight.set(callId, cancellation);
    const tool = toolFromHeader(headers.get(BusHeader.tool)) || "tool";
    const taskHeader = headers.get(BusHeader.task);
    const taskMode = taskModeOf(taskHeader);
    let releaseTool: (() => void) | undefined;
    // Who calls, as the gateway vouches: slots and pass-through sessions are shared fairly between callers.
    const caller = headers.get(BusHeader.caller) || undefined;
    const held = new HeldCall(msg, { nc, upstream, replica: this.#deps.replica, beats, deadline: started + budget, cancellation, rounds }, headers, caller);
    // Only a call whose agent may be asked something carries the relay (and declares it upstream).
    const interaction = held.capabilities ? { ask: held.ask, capabilities: held.capabilities } : undefined;
    let release: (() => void) | undefined;
    let pooled: PooledSession | undefined;
    let unhold: (() => void) | undefined;
    let share: ToolShare | undefined;
    let errorCode: string | undefined;
    let probing: CircuitBreaker | undefined;
    let probingTool: CircuitBreaker | undefined;
    let probingCaller: CircuitBreaker | undefined;
    // What a failure says: nothing before the call is admitted (circuits, shares and queues are
    // our own bounds), then about the session (connecting), then about the call itself.
    let phase: "admission" | "connecting" | "calling" = "admission";
    const running = this.#deps.running;
    running.count++;
    try {
      // Read just after a stall longer than requesters wait for a beat, the call may have waited in
      // the socket all along, its gateway given up on it and its agent retried it: it is not started.
      // Before, a replica frozen 6 s under traffic ran 4 of the 28 calls failed meanwhile once thawed.
      if (beats.readsStale()) {
        throw new ManifoldError("upstream_unavailable", `${target}: this connector replica was stalled while the call waited; it was not started`, { reason: "connector_stalled" });
      }
      // A task lives on the session that created it, which task requests find by pass-through headers
      // alone. (A call that cannot ask for roots looks up nothing more.)
      const partition = held.sessionPartition && !taskHeader ? held.sessionPartition : undefined;
      const own = headers.get(BusHeader.upstreamHeaders);
      // Only a call with credentials of its own can carry a token obtained for another address.
      if (own) mustBeObtainedFor(headers.get(BusHeader.upstreamResource), this.#deps.url, target);
      pooled = pool.sessionFor(passthroughOf(own, upstream, this.#deps.allowed, target), partition, caller);
      unhold = pool.hold(pooled);
      // The connector's own ping could not reach the upstream: its calls on the shared session would
      // each fail there (a proxy's 502, one per caller until that caller's circuit opened). A 2025
      // session is dropped as well; a 2026-07-28 upstream has none, and this is what stops them.
      if (!pooled.breaker) this.#deps.liveness.refuseIfUnreachable(target);
      probing = this.#admit(pooled.breaker ?? breaker, pooled.breaker ? `${target} (this caller's session)` : target);
      share = tools.of(tool);
      // On a caller's own session its breaker already covers the tool. On the shared one, the tool's
      // rate limits are everyone's, its timeouts this caller's own (its arguments may be what is slow).
      if (!pooled.breaker) {
        probingTool = this.#admit(share.breaker, `tool '${tool}' of ${target}`);
        const own = tools.callerCircuit(share, caller);
        if (own) probingCaller = this.#admit(own, `tool '${tool}' of ${target} (this caller's calls of it)`);
      }
      // A free slot and an open session are the common case: taken without awaiting anything.
      const slot = share.slots.acquire(remaining(), caller);
      releaseTool = typeof slot === "function" ? slot : await slot;
      const upstreamSlot = semaphore.acquire(remaining(), caller);
      release = typeof upstreamSlot === "function" ? upstreamSlot : await upstreamSlot;
      phase = "connecting";
      const session = pooled.session;
      held.sentBy = session;
      if (!session.connected) await session.ready(Math.min(remaining(), this.#deps.connectTimeoutMs));
      const onprogress = progressRelayOf(headers, nc, session, upstream);
      const log = callLogOf(headers, nc, session, upstream);
      if (onprogress || log) held.relays = { progress: onprogress, log: log?.relay };
      const attributes = () => ({ [Attr.mcpMethod]: "tools/call", [Attr.toolName]: tool, [Attr.upstream]: upstream });
      // While a 2026-07-28 round waits for the agent, the slots go back (a round nobody answers held
      // them for the call's budget), and are taken again, fairly, for the retry. The upstream has
      // answered (its breakers hear so, a probe included), and an agent that never answers is not the
      // upstream's failure: counted as one, six unanswered rounds opened the tool's circuit for everyone.
      const toolShare = share;
      const sessionBreaker = pooled.breaker;
      // (Only a call whose agent may be asked can have rounds.)
      const idle = interaction && (async <T>(wait: () => Promise<T>): Promise<T> => {
        release?.();
        releaseTool?.();
        release = releaseTool = undefined;
        (sessionBreaker ?? breaker).success();
        if (!sessionBreaker) tools.succeeded(toolShare, caller);
        probing = probingTool = probingCaller = undefined;
        phase = "admission";
        const answers = await wait();
        // Cancelled meanwhile: no slot to wait for (the catch below answers it as cancelled).
        if (cancellation?.cancelled) throw new Error("the call was cancelled");
        const again = toolShare.slots.acquire(remaining(), caller);
        releaseTool = typeof again === "function" ? again : await again;
        const upstreamAgain = semaphore.acquire(remaining(), caller);
        release = typeof upstreamAgain === "function" ? upstreamAgain : await upstreamAgain;
        phase = "calling";
        return answers;
      });
      phase = "calling";
      // A task call's: the upstream connection that holds the task it answered with.
      let connection: string | undefined;
      const result = await traced(`tools/call ${tool}`, SpanKind.CLIENT, attributes, async () => {
        try {
          const options = { timeoutMs: remaining(), budget, cancellation, onprogress, interaction, log, caller, task: taskMode, maxResultBytes: nc.info?.max_payload, idle, deadline: started + budget };
          if (!taskMode) return await session.callTool(tool, msg.string(), options);
          const created = await session.callForTask(tool, msg.string(), options);
          connection = created.connection;
          return created.text;
        } catch (error) {
          if (error instanceof ResultTooLarge) throw tooLarge(`${target} returned more than ${error.maxBytes} bytes for '${tool}'`, error.received, error.maxBytes);
          // A JSON-RPC error keeps its code on the span, its text without the credentials sent upstream
          // (`withheldIn`); anything else (library or OS text, which may quote a value) is mapped here,
          // inside the span, so the span records the sanitised text (`cause` keeps the original).
          throw cancellation?.cancelled ? error : error instanceof ProtocolError ? withheldIn(error) : mapUpstreamError(error, target, budget);
        }
      });
      (pooled.breaker ?? breaker).success();
      if (!pooled.breaker) {
        tools.succeeded(share, caller);
        this.#deps.liveness.answered();
      }
      if (connection !== undefined) this.#taskStatus.watch(session, connection, headers.get(BusHeader.taskStatus) || undefined, result, caller);
      // A credential the session sent, echoed back (a debug tool, a misconfigured server), is not passed on.
      const credentials = session.credentials;
      const clean = credentials.length === 0 ? result : redactResult(result, credentials);
      held.respond(fitting(clean, tool, target, nc.info?.max_payload), connection === undefined ? undefined : this.#taskHome(connection));
      // Alone, the answer goes out before the bookkeeping below (at one client it waited ~130 µs for it).
      if (running.count === 1) flushNow(nc);
    } catch (error) {
      if (cancellation?.cancelled) {
        errorCode = "cancelled";
        held.fail(new ManifoldError("upstream_error", `${target} call was cancelled`, { cancelled: true }));
      } else {
        const mapped = mapUpstreamError(error, target, budget);
        errorCode = mapped.code;
        if (phase !== "admission" && isHealthFailure(mapped)) {
          this.#countFailure(pooled!, share!, mapped, phase, caller);
          this.#deps.logger.warn({ code: mapped.code, reason: mapped.message }, "call failed");
        }
        held.fail(mapped);
        throw mapped;
      }
    } finally {
      running.count--;
      this.#deps.metrics.call(upstream, (Date.now() - started) / 1000, errorCode);
      release?.();
      releaseTool?.();
      probing?.release();
      probingTool?.release();
      probingCaller?.release();
      // Only this call's entry: another call under the same id (a caller's reuse) keeps its own.
      if (callId && this.#inFlight.get(callId) === cancellation) this.#inFlight.delete(callId);
      held.release();
      unhold?.();
      this.#deps.health.report();
    }
  }

  /**
   * Where a failure counts: everything on a caller's own session against that session's breaker
   * only. On the shared session: a rate limit (429) of the call against the tool (a limited tool is
   * not a down upstream, and one caller's calls of it cut no other caller off the upstream's other
   * tools); a timeout, the call's own connection closed unanswered or a proxy's 502 for it against
   * this caller's calls of the tool (a tool's latency may be its arguments', and a firewall may cut
   * one caller's requests; the ping that follows tells an unreachable upstream); anything else
   * against the upstream. A circuit it opens stays open for what the upstream's `Retry-After` said,
   * when it said one.
   */
  #countFailure(pooled: PooledSession, share: ToolShare, error: ManifoldError, phase: "connecting" | "calling", caller: string | undefined): void {
    const now = Date.now();
    // Only the upstream's own word (a 429's or 503's `Retry-After`, beside its status) holds a circuit
    // open that long; a hint of ours (when the session's next reconnection is due) is not its word.
    const retryAfterMs = error.data?.httpStatus === undefined ? undefined : (error.data.retryAfterMs as number | undefined);
    const callersOwn = error.code === "upstream_timeout" || mayBeOneRequests(error);
    if (pooled.breaker) pooled.breaker.failure(now, error.message, retryAfterMs);
    else if (phase === "calling" && callersOwn) this.#deps.tools.callerFailed(share, caller, now, error.message);
    else if (phase === "calling" && error.code === "upstream_rate_limited") this.#deps.tools.failed(share, now, error.message, retryAfterMs);
    else this.#deps.breaker.failure(now, error.message, retryAfterMs);
    // A slow tool or an upstream that answers nothing? A ping tells them apart.
    if (!pooled.breaker && callersOwn) this.#deps.liveness.timedOut(error.message);
  }
}
