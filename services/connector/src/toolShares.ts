import { CircuitBreaker } from "./circuitBreaker.js";
import { Semaphore } from "./semaphore.js";

/** One tool of an upstream, as this replica bounds it. */
export interface ToolShare {
  readonly tool: string;
  /** The tool's share of the upstream's slots; calls beyond it wait here, not in the upstream's queue. */
  readonly slots: Semaphore;
  /** Timeouts and rate limits (429) of this tool (on the upstream's shared session) count here, not against the upstream. */
  readonly breaker: CircuitBreaker;
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
 * wait in its own queue), and its timeouts open its own circuit. The map is bounded: tool names
 * arrive on the bus.
 */
export class ToolShares {
  readonly #tools = new Map<string, ToolShare>();
  /** Tools whose circuit is not closed, for health reports without a walk over every tool. */
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
    };
    this.#tools.set(tool, share);
    return share;
  }

  succeeded(share: ToolShare): void {
    // The common case costs one comparison: nothing to reset.
    if (share.breaker.failures === 0 && share.breaker.state === "closed") return;
    share.breaker.success();
    this.#troubled.delete(share);
  }

  failed(share: ToolShare, now: number, reason: string, retryAfterMs?: number): void {
    share.breaker.failure(now, reason, retryAfterMs);
    if (share.breaker.state !== "closed") this.#troubled.add(share);
  }

  /** Tools whose circuit is open or probing. */
  get troubled(): ReadonlySet<ToolShare> {
    return this.#troubled;
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
