import { CircuitBreaker } from "./circuitBreaker.js";
import { Semaphore } from "./semaphore.js";

/** Callers whose timeouts of one tool are remembered at once; past it a closed circuit is forgotten first. */
export const MAX_TIMED_OUT_CALLERS = 256;

/** One tool of an upstream, as this replica bounds it. */
export interface ToolShare {
  readonly tool: string;
  /** The tool's share of the upstream's slots; calls beyond it wait here, not in the upstream's queue. */
  readonly slots: Semaphore;
  /** Rate limits (429) of this tool on the upstream's shared session: the upstream's answer to every caller. */
  readonly breaker: CircuitBreaker;
  /**
   * Timeouts of this tool (and calls whose connection was closed unanswered), per caller
   * (`Manifold-Caller`): a tool's latency may be its arguments', so one caller's slow calls open
   * that caller's circuit only. Only callers with failures are here.
   */
  readonly callers: Map<string, CircuitBreaker>;
  /** How many of `callers` are open or probing. */
  openCallers: number;
  /** The reason of the caller circuit that opened last. */
  lastCallerReason: string | undefined;
}

export interface ToolShareOptions {
  upstream: string;
  /** Slots one tool may hold at once: its share of the upstream's maxConcurrency. */
  slots: number;
  maxQueue: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** Most tools remembered; past it an idle one is forgotten first. */
  maxTools?: number;
}

/**
 * Per-tool bounds inside one upstream, so one hanging or slow tool cannot starve the upstream's
 * other tools: each tool holds at most its share of the upstream's slots (more of its calls
 * wait in its own queue); its rate limits open its own circuit, and its timeouts the circuit of
 * the caller that made them. The maps are bounded: tool names and callers arrive on the bus.
 */
export class ToolShares {
  readonly #tools = new Map<string, ToolShare>();
  /** Tools with a circuit that is not closed, for health reports without a walk over every tool. */
  readonly #troubled = new Set<ToolShare>();
  readonly #options: ToolShareOptions;
  readonly #maxTools: number;

  constructor(options: ToolShareOptions) {
    this.#options = options;
    this.#maxTools = options.maxTools ?? 1_024;
  }

  of(tool: string): ToolShare {
    const known = this.#tools.get(tool);
    if (known) return known;
    if (this.#tools.size >= this.#maxTools) this.#forgetOne();
    const { upstream, slots, maxQueue, breakerThreshold, breakerCooldownMs } = this.#options;
    const share: ToolShare = {
      tool,
      slots: new Semaphore(slots, maxQueue, `tool '${tool}' of upstream '${upstream}'`),
      breaker: new CircuitBreaker(breakerThreshold, breakerCooldownMs),
      callers: new Map(),
      openCallers: 0,
      lastCallerReason: undefined,
    };
    this.#tools.set(tool, share);
    return share;
  }

  /** The circuit of this caller's timeouts of the tool, if it has had any since its last success. */
  callerCircuit(share: ToolShare, caller = ""): CircuitBreaker | undefined {
    return share.callers.size === 0 ? undefined : share.callers.get(caller);
  }

  succeeded(share: ToolShare, caller = ""): void {
    // The common case costs two comparisons: nothing to reset.
    if (share.callers.size === 0 && share.breaker.failures === 0 && share.breaker.state === "closed") return;
    share.breaker.success();
    const own = share.callers.get(caller);
    if (own) {
      if (own.state !== "closed") share.openCallers--;
      share.callers.delete(caller);
    }
    this.#check(share);
  }

  /** A rate limit (429): the tool's own circuit, for every caller. */
  failed(share: ToolShare, now: number, reason: string, retryAfterMs?: number): void {
    share.breaker.failure(now, reason, retryAfterMs);
    this.#check(share);
  }

  /** A timeout, or the call's own connection closed unanswered: the circuit of the caller that made the call. */
  callerFailed(share: ToolShare, caller: string | undefined, now: number, reason: string): void {
    const key = caller ?? "";
    let circuit = share.callers.get(key);
    if (!circuit) {
      if (share.callers.size >= MAX_TIMED_OUT_CALLERS) this.#forgetCaller(share);
      share.callers.set(key, (circuit = new CircuitBreaker(this.#options.breakerThreshold, this.#options.breakerCooldownMs)));
    }
    const wasClosed = circuit.state === "closed";
    circuit.failure(now, reason);
    if (wasClosed && circuit.state !== "closed") {
      share.openCallers++;
      share.lastCallerReason = reason;
    }
    this.#check(share);
  }

  /** Tools whose own circuit, or some caller's circuit of them, is open or probing. */
  get troubled(): ReadonlySet<ToolShare> {
    return this.#troubled;
  }

  /**
   * Forgets the caller circuits whose cooldown is over and that no call has probed since: only the
   * caller's next call would close them, so a caller that stopped calling kept its tool troubled
   * (and its upstream degraded) for good, whatever everyone else's calls did. Forgotten, that
   * caller's next timeouts count from none again. Called with the health heartbeat, not per call.
   */
  settle(now: number): void {
    for (const share of this.#troubled) {
      if (share.openCallers === 0) continue;
      for (const [caller, circuit] of share.callers) {
        if (circuit.state === "closed" || !circuit.awaitsProbe(now)) continue;
        share.callers.delete(caller);
        share.openCallers--;
      }
      this.#check(share);
    }
  }

  #check(share: ToolShare): void {
    if (share.breaker.state !== "closed" || share.openCallers > 0) this.#troubled.add(share);
    else this.#troubled.delete(share);
  }

  /** Room for one more caller: a closed circuit (failures below the threshold) goes first, else the oldest. */
  #forgetCaller(share: ToolShare): void {
    for (const [caller, circuit] of share.callers) {
      if (circuit.state !== "closed") continue;
      share.callers.delete(caller);
      return;
    }
    const [caller] = share.callers.keys();
    share.callers.delete(caller!);
    share.openCallers--;
  }

  #forgetOne(): void {
    for (const [tool, share] of this.#tools) {
      if (this.#troubled.has(share)) continue;
      this.#tools.delete(tool);
      return;
    }
    const [tool, share] = this.#tools.entries().next().value!;
    this.#tools.delete(tool);
    this.#troubled.delete(share);
  }
}

/** What a troubled tool's circuits say, for its upstream's health reason. */
export function toolTrouble(share: ToolShare): string {
  if (share.breaker.state !== "closed") return `${share.breaker.state}: ${share.breaker.lastReason ?? "rate limited"}`;
  return `open for ${share.openCallers} caller${share.openCallers === 1 ? "" : "s"}: ${share.lastCallerReason ?? "timeouts"}`;
}
