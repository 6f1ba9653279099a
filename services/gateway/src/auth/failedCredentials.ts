import { ManifoldError } from "@manifold/contracts";

/** What a refusal tells its caller to wait, and how long it is held before it is answered. */
export const FAILED_CREDENTIALS_RETRY_AFTER_S = 1;

/**
 * The budget every request presenting credentials that fail shares on one replica
 * (`GATEWAY_MAX_FAILED_CREDENTIALS_PER_S`, a second's worth at most), as the registry's admin API
 * shares one among requests without a valid token. A failure costs what no success does: a
 * signature checked (an RSA verification), the projection caught up with the registry (a bus
 * round trip), and a curable failure checked again. Without it, 64 connections of bad tokens put an
 * honest consumer's calls from 247 a second to 75 (p99 17.5 → 90 ms). Credentials already
 * verified never meet it; one not yet verified meets it only while it is spent.
 */
export class FailedCredentials {
  #units: number;
  #at = performance.now();

  constructor(readonly perSecond: number) {
    this.#units = perSecond;
  }

  /** Counts a failure; false when the budget was spent (the failure is then answered `tooManyFailedCredentials`). */
  take(): boolean {
    if (!this.#refill()) return false;
    this.#units -= 1;
    return true;
  }

  /** Whether a failure now would be refused: a JWT not yet verified is then not verified at all. */
  spent(): boolean {
    return !this.#refill();
  }

  #refill(): boolean {
    const now = performance.now();
    this.#units = Math.min(this.perSecond, this.#units + ((now - this.#at) * this.perSecond) / 1000);
    this.#at = now;
    return this.#units >= 1;
  }
}

export const tooManyFailedCredentials = (perSecond: number) =>
  new ManifoldError(
    "too_many_failed_credentials",
    `requests with credentials that fail reached this gateway replica faster than it checks them (${perSecond} a second, for every such caller together); retry in a second`,
    { retryAfterSeconds: FAILED_CREDENTIALS_RETRY_AFTER_S },
  );
