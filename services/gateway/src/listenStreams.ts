import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import { HeldByCaller, callerName, type Closable } from "./heldByCaller.js";

/** The resource URIs one stream may follow, each at most `MAX_URI_LENGTH`. */
export const MAX_LISTEN_URIS = 100;

/** The resource URIs a subscriptions/listen request names (`params.notifications.resourceSubscriptions`), unchecked. */
export const listenedUris = (body: unknown): unknown => (body as { params?: { notifications?: { resourceSubscriptions?: unknown } } } | undefined)?.params?.notifications?.resourceSubscriptions;

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
  readonly #held = new HeldByCaller();
  #total = 0;

  constructor(readonly limits: ListenLimits) {}

  /** Counts a stream until its response closes; refuses one past either bound. */
  hold(principal: Principal, response: Closable): void {
    const { total, perPrincipal } = this.limits;
    if (this.#total >= total) throw new ManifoldError("at_capacity", `this gateway replica holds its maximum of ${total} listen streams; listen on another replica`);
    const held = this.#held.of(principal);
    if (held >= perPrincipal) {
      throw new ManifoldError("too_many_streams", `${callerName(principal)} already holds ${held} listen streams on this gateway replica (at most ${perPrincipal}); close one first`);
    }
    this.#total++;
    this.#held.hold(principal, 1, response, () => this.#total--);
  }

  /** Ends the streams of a consumer deleted meanwhile. */
  endConsumer(consumer: string): void {
    this.#held.endConsumer(consumer);
  }
}
