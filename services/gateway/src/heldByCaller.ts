import type { Principal } from "@manifold/domain";

export type Closable = { once(event: "close", listener: () => void): unknown };

/** How a refusal names the caller that holds too much. */
export const callerName = (principal: Principal) => (principal.consumer ? `consumer '${principal.consumer}'` : "this caller");

/**
 * What each caller holds on this replica (calls in flight, listen streams), each counted until
 * the response it belongs to closes: what one caller holds costs memory every other caller of the
 * replica needs, so each is bounded per caller.
 */
export class HeldByCaller {
  readonly #held = new Map<string, number>();

  of(principal: Principal): number {
    return this.#held.get(principal.id) ?? 0;
  }

  /** Counts `count` for the caller until `response` closes, then calls `released`. */
  hold(principal: Principal, count: number, response: Closable, released?: () => void): void {
    const id = principal.id;
    this.#held.set(id, (this.#held.get(id) ?? 0) + count);
    response.once("close", () => {
      const left = (this.#held.get(id) ?? count) - count;
      if (left > 0) this.#held.set(id, left);
      else this.#held.delete(id);
      released?.();
    });
  }
}
