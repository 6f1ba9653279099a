import { ManifoldError } from "@manifold/contracts";
import { GroupedTimer } from "./groupedTimer.js";
import { IndexedHeap } from "./indexedHeap.js";

type Release = () => void;
interface Waiter {
  /** Arrival order, across callers: equals are served longest-waiting first. */
  readonly seq: number;
  grant: () => void;
  shed: (error: ManifoldError) => void;
  /** Grouped: nearly every call waits at 64 clients, each for what is left of its budget. */
  timer: GroupedTimer;
}
/** One caller's part: the slots it holds, its calls waiting in arrival order, and its release. */
interface CallerSlots {
  readonly caller: string;
  /** When it became known, among the callers known now: equal queues give way earliest known first. */
  readonly known: number;
  held: number;
  readonly waiting: Waiter[];
  readonly release: Release;
  /** Its places in the two heaps of waiting callers, `#fair` and `#long` (-1: waits for nothing). */
  readonly places: number[];
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
  #known = 0;
  /**
   * The callers waiting, kept ordered as they change rather than searched on each release or full
   * queue: a search read every caller holding or waiting (up to slots + queue, 64 + 1,000 by default),
   * exactly when the upstream was saturated. First of `#fair`: the fewest held, then the
   * longest-waiting oldest call; first of `#long`: the most waiting, then the earliest known.
   */
  readonly #fair = new IndexedHeap<CallerSlots>((a, b) => a.held < b.held || (a.held === b.held && a.waiting[0]!.seq < b.waiting[0]!.seq), 0);
  readonly #long = new IndexedHeap<CallerSlots>((a, b) => a.waiting.length > b.waiting.length || (a.waiting.length === b.waiting.length && a.known < b.known), 1);

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
    // A free slot means nobody waits (so this caller is in neither heap).
    if (this.#available > 0) {
      this.#available--;
      slots.held++;
      return slots.release;
    }
    if (this.#queued >= this.#maxQueue) {
      // (Of the callers waiting: with none, the queue holds nothing and this call is refused.)
      const longest = this.#long.first();
      // The queue is shared max-min: a call takes the place of the newest wait of the caller with
      // the most waiting, if that is at least two more than this caller has (else the queue is fair as it is).
      if (longest === undefined || longest.waiting.length < slots.waiting.length + 2) {
        this.#forgetIfIdle(slots);
        throw this.#saturated(`${this.#maxQueue} calls already queued`);
      }
      const shed = longest.waiting.pop()!;
      this.#queued--;
      this.#reorder(longest);
      this.#forgetIfIdle(longest);
      shed.shed(this.#saturated("another caller's call took its place in the queue (a full queue is shared evenly between callers)"));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        seq: this.#seq++,
        grant: () => {
          waiter.timer.clear();
          resolve(slots.release);
        },
        shed: (error) => {
          waiter.timer.clear();
          reject(error);
        },
        timer: new GroupedTimer(timeoutMs, () => {
          slots.waiting.splice(slots.waiting.indexOf(waiter), 1);
          this.#queued--;
          this.#reorder(slots);
          this.#forgetIfIdle(slots);
          reject(new ManifoldError("upstream_timeout", `${this.#target} call waited ${timeoutMs} ms for a free slot`, { timeoutMs }));
        }),
      };
      slots.waiting.push(waiter);
      this.#queued++;
      this.#reorder(slots);
    });
  }

  #saturated(why: string): ManifoldError {
    return new ManifoldError("upstream_unavailable", `${this.#target} is saturated: ${why}`);
  }

  #callerSlots(caller: string): CallerSlots {
    const slots: CallerSlots = {
      caller,
      known: this.#known++,
      held: 0,
      waiting: [],
      places: [-1, -1],
      release: () => {
        // Chosen while this caller still counts the slot it frees: callers with backlogs take turns.
        const next = this.#queued > 0 ? this.#fair.first() : undefined;
        slots.held--;
        if (slots.waiting.length > 0) this.#reorder(slots);
        if (next) {
          next.held++;
          this.#queued--;
          const granted = next.waiting.shift()!;
          this.#reorder(next);
          granted.grant();
        } else this.#available++;
        this.#forgetIfIdle(slots);
      },
    };
    this.#callers.set(caller, slots);
    return slots;
  }

  /** Puts a caller whose holding or waiting changed back in place among the waiting (or out, waiting for nothing). */
  #reorder(slots: CallerSlots): void {
    if (slots.waiting.length === 0) {
      this.#fair.delete(slots);
      this.#long.delete(slots);
    } else {
      this.#fair.set(slots);
      this.#long.set(slots);
    }
  }

  #forgetIfIdle(slots: CallerSlots): void {
    if (slots.held === 0 && slots.waiting.length === 0 && this.#callers.get(slots.caller) === slots) this.#callers.delete(slots.caller);
  }
}
