import { ManifoldError } from "@manifold/contracts";

type Release = () => void;
interface Waiter {
  /** Arrival order, across callers: equals are served longest-waiting first. */
  readonly seq: number;
  grant: () => void;
  shed: (error: ManifoldError) => void;
  timer: NodeJS.Timeout;
}
/** One caller's part: the slots it holds, its calls waiting in arrival order, and its release. */
interface CallerSlots {
  readonly caller: string;
  held: number;
  readonly waiting: Waiter[];
  readonly release: Release;
}

/**
 * Bounds the calls in flight to one upstream (or one of its tools). Excess calls wait for at most
 * their remaining time budget, so a slow upstream cannot exhaust the process, and they wait fairly
 * between callers. Without contention a caller takes any free slot. Under contention:
 * - a freed slot goes to the waiting caller holding the fewest (the releasing caller still counts
 *   the slot it frees, so callers with backlogs take turns), equals to the longest-waiting call;
 * - a caller alone may fill the queue; once it is full, a call takes the place of the newest wait
 *   of the caller with the most waiting (by two or more), so the queue ends up shared evenly and
 *   another caller always finds room.
 */
export class Semaphore {
  #available: number;
  #queued = 0;
  #seq = 0;
  readonly #maxQueue: number;
  readonly #target: string;
  /** Callers holding or awaiting a slot; one with neither is forgotten, so the map is bounded by slots and queue. */
  readonly #callers = new Map<string, CallerSlots>();

  /** `target` names what is bounded in errors: `upstream 'x'`, or one of its tools. */
  constructor(limit: number, maxQueue: number, target: string) {
    this.#available = limit;
    this.#maxQueue = maxQueue;
    this.#target = target;
  }

  /** Callers holding or awaiting a slot now. */
  get callers(): number {
    return this.#callers.size;
  }

  /**
   * A release function, at once when a slot is free, else a promise of one; throws when the queue is
   * full and shared evenly, rejects when the wait outlasts `timeoutMs` or gives its place to another
   * caller. `caller`: whom the gateway vouches the call is from (one caller when absent).
   */
  acquire(timeoutMs: number, caller = ""): Promise<Release> | Release {
    const slots = this.#callers.get(caller) ?? this.#callerSlots(caller);
    if (this.#available > 0) {
      this.#available--;
      slots.held++;
      return slots.release;
    }
    if (this.#queued >= this.#maxQueue) {
      const longest = this.#longestQueue();
      // The queue is shared max-min: a call takes the place of the newest wait of the caller with
      // the most waiting, if that is at least two more than this caller has (else the queue is fair as it is).
      if (longest === undefined || longest.waiting.length < slots.waiting.length + 2) {
        this.#forgetIfIdle(slots);
        throw this.#saturated(`${this.#maxQueue} calls already queued`);
      }
      const shed = longest.waiting.pop()!;
      this.#queued--;
      this.#forgetIfIdle(longest);
      shed.shed(this.#saturated("another caller's call took its place in the queue (a full queue is shared evenly between callers)"));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        seq: this.#seq++,
        grant: () => {
          clearTimeout(waiter.timer);
          resolve(slots.release);
        },
        shed: (error) => {
          clearTimeout(waiter.timer);
          reject(error);
        },
        timer: setTimeout(() => {
          slots.waiting.splice(slots.waiting.indexOf(waiter), 1);
          this.#queued--;
          this.#forgetIfIdle(slots);
          reject(new ManifoldError("upstream_timeout", `${this.#target} call waited ${timeoutMs} ms for a free slot`, { timeoutMs }));
        }, timeoutMs),
      };
      slots.waiting.push(waiter);
      this.#queued++;
    });
  }

  #saturated(why: string): ManifoldError {
    return new ManifoldError("upstream_unavailable", `${this.#target} is saturated: ${why}`);
  }

  #callerSlots(caller: string): CallerSlots {
    const slots: CallerSlots = {
      caller,
      held: 0,
      waiting: [],
      release: () => {
        // Chosen while this caller still counts the slot it frees: callers with backlogs take turns.
        const next = this.#queued > 0 ? this.#fairest() : undefined;
        slots.held--;
        if (next) {
          next.held++;
          this.#queued--;
          next.waiting.shift()!.grant();
        } else this.#available++;
        this.#forgetIfIdle(slots);
      },
    };
    this.#callers.set(caller, slots);
    return slots;
  }

  /** The waiting caller holding the fewest slots; among equals, the one whose oldest call has waited longest. */
  #fairest(): CallerSlots | undefined {
    let fairest: CallerSlots | undefined;
    for (const slots of this.#callers.values()) {
      if (slots.waiting.length === 0) continue;
      if (fairest === undefined || slots.held < fairest.held || (slots.held === fairest.held && slots.waiting[0]!.seq < fairest.waiting[0]!.seq)) fairest = slots;
    }
    return fairest;
  }

  /** The caller with the most calls waiting (the earliest known of equals). */
  #longestQueue(): CallerSlots | undefined {
    let longest: CallerSlots | undefined;
    for (const slots of this.#callers.values()) if (longest === undefined || slots.waiting.length > longest.waiting.length) longest = slots;
    return longest;
  }

  #forgetIfIdle(slots: CallerSlots): void {
    if (slots.held === 0 && slots.waiting.length === 0 && this.#callers.get(slots.caller) === slots) this.#callers.delete(slots.caller);
  }
}
