import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";

export interface ListenLimits {
  /** Streams one replica holds open (`GATEWAY_MAX_LISTENS`). */
  total: number;
  /** Streams one caller holds open on one replica (`GATEWAY_MAX_LISTENS_PER_PRINCIPAL`). */
  perPrincipal: number;
}

/**
 * The 2026-07-28 `subscriptions/listen` streams this replica holds open, counted per caller and in
 * all, as 2025 sessions are: a stream costs a socket and memory for as long as its caller keeps
 * it, so one caller may not take what every other caller of the replica needs.
 */
export class ListenStreams {
  readonly #held = new Map<string, number>();
  #total = 0;

  constructor(readonly limits: ListenLimits) {}

  /** Counts a stream until its response closes; refuses one past either bound. */
  hold(principal: Principal, response: { once(event: "close", listener: () => void): unknown }): void {
    const { total, perPrincipal } = this.limits;
    if (this.#total >= total) throw new ManifoldError("at_capacity", `this gateway replica holds its maximum of ${total} listen streams; listen on another replica`);
    const held = this.#held.get(principal.id) ?? 0;
    if (held >= perPrincipal) {
      const who = principal.consumer ? `consumer '${principal.consumer}'` : "this caller";
      throw new ManifoldError("too_many_streams", `${who} already holds ${held} listen streams on this gateway replica (at most ${perPrincipal}); close one first`);
    }
    this.#held.set(principal.id, held + 1);
    this.#total++;
    response.once("close", () => {
      this.#total--;
      const left = (this.#held.get(principal.id) ?? 1) - 1;
      if (left > 0) this.#held.set(principal.id, left);
      else this.#held.delete(principal.id);
    });
  }
}
