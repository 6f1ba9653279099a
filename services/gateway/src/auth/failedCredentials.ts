import { ManifoldError } from "@manifold/contracts";
import { setTimeout as sleep } from "node:timers/promises";

/** What a refusal tells its caller to wait, and how long it is held before it is answered. */
export const FAILED_CREDENTIALS_RETRY_AFTER_S = 1;

/** Client addresses whose failures are remembered at once; past it the longest-remembered is forgotten. */
const MAX_ADDRESSES = 10_000;

/** A token bucket of `perSecond`, holding a second's worth at most. */
class Bucket {
  #units: number;
  #at = performance.now();

  constructor(readonly perSecond: number) {
    this.#units = perSecond;
  }

  has(): boolean {
    return this.#refill() >= 1;
  }

  /** Nothing taken for a second: no failure of late. */
  full(): boolean {
    return this.#refill() >= this.perSecond;
  }

  take(): boolean {
    if (!this.has()) return false;
    this.#units -= 1;
    return true;
  }

  #refill(): number {
    const now = performance.now();
    this.#units = Math.min(this.perSecond, this.#units + ((now - this.#at) * this.perSecond) / 1000);
    this.#at = now;
    return this.#units;
  }
}

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
 * a second. At most the budget and one share a second are checked, whoever sends them.
 */
export class FailedCredentials {
  readonly #all: Bucket;
  readonly #clean: Bucket;
  readonly #share: number;
  readonly #byAddress = new Map<string, Bucket>();

  constructor(readonly perSecond: number) {
    this.#all = new Bucket(perSecond);
    this.#share = Math.max(1, perSecond / 10);
    this.#clean = new Bucket(this.#share);
  }

  /** Counts a failure of `address`; false when its share or the replica's budget was spent (the failure is then answered `tooManyFailedCredentials`). */
  take(address: string | undefined): boolean {
    if (address !== undefined && !this.#own(address).take()) return false;
    return this.#all.take();
  }

  /** Whether a JWT not verified yet, from `address`, is verified now (else it is refused so, unverified). */
  admits(address: string | undefined): boolean {
    const own = address === undefined ? undefined : this.#byAddress.get(address);
    if (own && !own.has()) return false;
    if (this.#all.has()) return true;
    return address !== undefined && (!own || own.full()) && this.#clean.take();
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

  #own(address: string): Bucket {
    let own = this.#byAddress.get(address);
    if (!own) {
      if (this.#byAddress.size >= MAX_ADDRESSES) this.#byAddress.delete(this.#byAddress.keys().next().value!);
      this.#byAddress.set(address, (own = new Bucket(this.#share)));
    }
    return own;
  }
}

export const tooManyFailedCredentials = (perSecond: number) =>
  new ManifoldError(
    "too_many_failed_credentials",
    `requests with credentials that fail reached this gateway replica faster than it checks them (${perSecond} a second, for every such caller together, a tenth for one address); retry in a second`,
    { retryAfterSeconds: FAILED_CREDENTIALS_RETRY_AFTER_S },
  );
