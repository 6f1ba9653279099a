import { ManifoldError } from "@manifold/contracts";
import { TokenBuckets } from "@manifold/domain";
import { setTimeout as sleep } from "node:timers/promises";
import { clientNetwork } from "./clientNetwork.js";

/** What a refusal tells its caller to wait, and how long it is held before it is answered. */
export const FAILED_CREDENTIALS_RETRY_AFTER_S = 1;

/** The one bucket the whole replica's failures share, and the one of the allowance of callers without failures. */
const ALL = "all";
const CLEAN = "clean";

/**
 * The budget requests presenting credentials that fail share on one replica
 * (`GATEWAY_MAX_FAILED_CREDENTIALS_PER_S`, a second's worth at most), as the registry's admin API
 * shares one among requests without a valid token. A failure costs what no success does: a
 * signature checked (an RSA verification), the projection caught up with the registry (a bus
 * round trip), and a curable failure checked again. Without it, 64 connections of bad tokens put an
 * honest consumer's calls from 247 a second to 75 (p99 17.5 → 90 ms). Credentials already
 * verified never meet it.
 *
 * Shared alone, it was spent by whoever failed most: during one address's flood of forged JWTs
 * (256 connections), 11 of 30 new, valid JWTs of an honest caller elsewhere were refused unverified.
 * So each client address has a share of its own (a tenth of the budget, at least 1): past it, that
 * address's new JWTs are refused unverified, and its failures no longer spend the replica's budget.
 * It takes ten addresses failing at their full share to spend the budget; then a caller with no
 * failure in the last second still has its new JWTs verified, from an allowance of one more share
 * a second. At most the budget and one share a second are checked, whoever sends them. A share is
 * an IPv6 caller's /64's, not its address's (`clientNetwork`).
 */
export class FailedCredentials {
  readonly #replica: TokenBuckets;
  readonly #clean: TokenBuckets;
  readonly #byAddress: TokenBuckets;

  /** `now`: the clock its buckets refill by (a test holds it still, so a slow machine refills nothing between two lines). */
  constructor(
    readonly perSecond: number,
    now?: () => number,
  ) {
    const share = Math.max(1, perSecond / 10);
    this.#replica = new TokenBuckets(perSecond, { now });
    this.#clean = new TokenBuckets(share, { now });
    this.#byAddress = new TokenBuckets(share, { now });
  }

  /** Counts a failure of `address`; false when its share or the replica's budget was spent (the failure is then answered `tooManyFailedCredentials`). */
  take(address: string | undefined): boolean {
    if (address !== undefined && !this.#byAddress.take(clientNetwork(address), 1)) return false;
    return this.#replica.take(ALL, 1);
  }

  /** Whether a JWT not verified yet, from `address`, is verified now (else it is refused so, unverified). */
  admits(address: string | undefined): boolean {
    const own = address === undefined ? 0 : this.#byAddress.units(clientNetwork(address));
    if (address !== undefined && own < 1) return false;
    if (this.#replica.units(ALL) >= 1) return true;
    // No failure in the last second: its bucket is full (or it has none).
    return address !== undefined && own >= this.#byAddress.capacity && this.#clean.take(CLEAN, 1);
  }

  /**
   * Counts `error`, a refusal of credentials presented by `address`, against the budget: past it (or
   * for a JWT not verified while it was spent), rejects with 429 after its `Retry-After`, so a caller
   * waiting for its answers (any HTTP/1.1 connection) sends at most one a second; else resolves, and
   * the caller answers the refusal as it is. Every route that checks credentials goes through it.
   */
  async refusePastBudget(error: unknown, authorization: string | undefined, address: string | undefined): Promise<void> {
    if (!(error instanceof ManifoldError) || !authorization) return;
    if (error.code !== "too_many_failed_credentials" && (error.code !== "unauthorized" || this.take(address))) return;
    await sleep(FAILED_CREDENTIALS_RETRY_AFTER_S * 1_000);
    throw error.code === "too_many_failed_credentials" ? error : tooManyFailedCredentials(this.perSecond);
  }
}

export const tooManyFailedCredentials = (perSecond: number) =>
  new ManifoldError(
    "too_many_failed_credentials",
    `requests with credentials that fail reached this gateway replica faster than it checks them (${perSecond} a second, for every such caller together, a tenth for one address); retry in a second`,
    { retryAfterSeconds: FAILED_CREDENTIALS_RETRY_AFTER_S },
  );
