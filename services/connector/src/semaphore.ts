import { ManifoldError } from "@manifold/contracts";

type Release = () => void;
interface Waiter {
  grant: () => void;
  timer: NodeJS.Timeout;
}
/** One caller's part: the slots it holds, its calls waiting in arrival order, and its release. */
interface CallerSlots {
  held: number;
  readonly waiting: Waiter[];
  readonly release: Release;
}

/**
 * Bounds the calls in flight to one upstream (or one of its tools). Excess calls wait for at most
 * their remaining time budget, so a slow upstream cannot exhaust the process, and they wait fairly
 * between callers: a freed slot goes to the waiting caller that holds the fewest, so one caller's
 * backlog never stands in front of another caller's call, and one caller may fill at most half of
 * the queue, so another always finds room. Without contention a caller may take every free slot.
 */
export class Semaphore {
  #available: number;
  #queued = 0;
  readonly #maxQueue: number;
  readonly #maxQueuePerCaller: number;
  readonly #target: string;
  /** Callers holding or awaiting a slot; one with neither is forgotten, so the map is bounded by slots and queue. */
  readonly #callers = new Map<string, CallerSlots>();

  /** `target` names what is bounded in errors: `upstream 'x'`, or one of its tools. */
  constructor(limit: number, maxQueue: number, target: string) {
    this.#available = limit;
    this.#maxQueue = maxQueue;
    this.#maxQueuePerCaller = Math.max(1, Math.ceil(maxQueue / 2));
    this.#target = target;
  }

  /**
   * A release function, at once when a slot is free, else a promise of one; throws when the queue (or
   * this caller's half of it) is full, rejects when the wait outlasts `timeoutMs`. `caller`: whom the
   * gateway vouches the call is from (one caller when absent).
   */
  acquire(timeoutMs: number, caller = ""): Promise<Release> | Release {
    const slots = this.#callers.get(caller) ?? this.#callerSlots(caller);
    if (this.#available > 0) {
      this.#available--;
      slots.held++;
      return slots.release;
    }
    if (this.#queued >= this.#maxQueue || slots.waiting.length >= this.#maxQueuePerCaller) {
      this.#forgetIfIdle(caller, slots);
      const full = this.#queued >= this.#maxQueue ? `${this.#maxQueue} calls already queued` : `this caller already has ${slots.waiting.length} calls queued`;
      throw new ManifoldError("upstream_unavailable", `${this.#target} is saturated: ${full}`);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          resolve(slots.release);
        },
        timer: setTimeout(() => {
          slots.waiting.splice(slots.waiting.indexOf(waiter), 1);
          this.#queued--;
          this.#forgetIfIdle(caller, slots);
          reject(new ManifoldError("upstream_timeout", `${this.#target} call waited ${timeoutMs} ms for a free slot`, { timeoutMs }));
        }, timeoutMs),
      };
      slots.waiting.push(waiter);
      this.#queued++;
    });
  }

  /** Callers holding or awaiting a slot now. */
  get callers(): number {
    return this.#callers.size;
  }

  #callerSlots(caller: string): CallerSlots {
    const slots: CallerSlots = {
      held: 0,
      waiting: [],
      release: () => {
        slots.held--;
        const next = this.#queued > 0 ? this.#fairest() : undefined;
        if (next) {
          next.held++;
          this.#queued--;
          next.waiting.shift()!.grant();
        } else this.#available++;
        this.#forgetIfIdle(caller, slots);
      },
    };
    this.#callers.set(caller, slots);
    return slots;
  }

  /** The waiting caller holding the fewest slots (the earliest known of equals). */
  #fairest(): CallerSlots | undefined {
    let fairest: CallerSlots | undefined;
    for (const slots of this.#callers.values()) {
      if (slots.waiting.length > 0 && (fairest === undefined || slots.held < fairest.held)) fairest = slots;
    }
    return fairest;
  }

  #forgetIfIdle(caller: string, slots: CallerSlots): void {
    if (slots.held === 0 && slots.waiting.length === 0 && this.#callers.get(caller) === slots) this.#callers.delete(caller);
  }
}
