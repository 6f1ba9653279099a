import { ManifoldError } from "@manifold/contracts";
import { TokenBuckets } from "@manifold/domain";
import { setTimeout as sleep } from "node:timers/promises";

/** What a refusal tells its caller to wait, and how long it is held before it is answered. */
const RETRY_AFTER_SECONDS = 1;
/**
 * The most an idle token may send at once: a tenth of a second's worth (50 by default). A client
 * sending one request after another below the rate never meets it, nor the console (a few requests
 * at once); with a second's worth, loops refused together came back together and were served a
 * second's worth at full speed, holding up other admins' commands as long.
 */
const BURST_SECONDS = 0.1;

/**
 * Requests per second each admin token may send this replica, whatever they ask
 * (`REGISTRY_MAX_REQUESTS_PER_S_PER_ADMIN`), and requests without a valid token, all together.
 * One admin's 200 loops of `GET /v1/whoami` put another's commands at p50 69–117 ms (4 ms alone),
 * and 200 loops of bad tokens at 73–85 ms. Refusing at once saves nothing when the request was
 * cheap: the 429 costs the event loop what the answer did, and a caller looping on it comes
 * straight back. So a refusal is answered after its `Retry-After`: a caller that waits for its
 * answers (any HTTP/1.1 connection does) sends at most one request a second on each connection
 * past its budget. Holding costs a timer on a socket the caller could hold idle anyway.
 * 500 a second by default: at 1,000 of `whoami` served, another admin's commands were still at p50
 * 9–54 ms on a busy two-core machine, at 500 at 5–17 ms; `manifold apply` sends one command after
 * another, ~420 a second at most on the same machine, and retries a 429 after its `Retry-After`.
 */
export class AdminBudget {
  readonly #admins: TokenBuckets;
  readonly #unauthenticated: TokenBuckets;

  constructor(
    readonly perSecond: number,
    readonly holdMs = RETRY_AFTER_SECONDS * 1_000,
  ) {
    const capacity = Math.max(1, Math.ceil(perSecond * BURST_SECONDS));
    this.#admins = new TokenBuckets(perSecond, { capacity });
    this.#unauthenticated = new TokenBuckets(perSecond, { capacity });
  }

  /** Takes a request of `admin`'s budget, or refuses it (`rate_limited`) once the hold has passed. */
  async take(admin: string): Promise<void> {
    if (this.#admins.take(admin, 1)) return;
    await sleep(this.holdMs);
    throw new ManifoldError("rate_limited", `admin '${admin}' sent more requests than this registry replica serves one admin token (${this.perSecond} a second); retry in a second`, {
      retryAfterSeconds: RETRY_AFTER_SECONDS,
    });
  }

  /** Waits out the hold when requests without a valid token are past the budget they share; their refusal (401) follows. */
  async takeUnauthenticated(): Promise<void> {
    if (!this.#unauthenticated.take("", 1)) await sleep(this.holdMs);
  }
}
