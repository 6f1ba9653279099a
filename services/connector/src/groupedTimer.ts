/**
 * Durations at or above this are set in two parts: the first a multiple of it, the rest once that
 * has run (only a timer that is still set by then pays the second part).
 */
export const GROUP_MS = 1_024;

/**
 * A timer that fires `ms` from now, like `setTimeout`, set so that timers of nearby durations share
 * Node's work. Node keeps one timer list per distinct duration: a list is made (a priority-queue
 * insert, a key added to a dictionary) when a timer of a new duration is set and dropped (the key
 * deleted, the dictionary rehashed) when its last timer is cleared. A call's deadline timer is set
 * for what is left of its budget, a duration that differs by a millisecond or more from one call to
 * the next, so each call made and dropped a list of its own: ~5,000 instructions a call in the
 * connector at 64 clients (callgrind, docs/performance.md, helper-206). Here a long timer is set
 * first for its duration rounded down to a multiple of `GROUP_MS` (one list for every call of a
 * budget, kept while calls come and go), and when that runs, for the rest, from a monotonic clock: it fires
 * no earlier than a plain `setTimeout` would, and at once if the first part ran late past the time.
 * Calls end long before: the second part is for the few that run to their deadline.
 */
export class GroupedTimer {
  #timer: NodeJS.Timeout;

  constructor(ms: number, fire: () => void) {
    if (!(ms >= GROUP_MS)) {
      this.#timer = setTimeout(fire, ms);
      return;
    }
    // Monotonic, as Node's own timers are: a step of the wall clock moves neither part.
    const at = performance.now() + ms;
    this.#timer = setTimeout(() => {
      const left = at - performance.now();
      if (left <= 0) fire();
      else this.#timer = setTimeout(fire, left);
    }, ms - (ms % GROUP_MS));
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}
