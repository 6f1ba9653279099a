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
  /** JWT checks under way, per client network and in all (`verifying`): at most the connections open, each entry gone at 0. */
  readonly #checking = new Map<string, number>();
  #checkingAll = 0;
  /**
   * What a token waiting for checks under way waits for: the next check of its network (or of any)
   * to end, whichever it is. Each is made by a waiter and settled by the next end, so it exists only
   * while its network has checks under way.
   */
  readonly #nextEnd = new Map<string, { ended: Promise<void>; end: () => void }>();
  #nextEndAll: { ended: Promise<void>; end: () => void } | undefined;

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
    return this.#admission(address === undefined ? undefined : clientNetwork(address)) === "now";
  }

  /**
   * `admits`, counting every check under way as the failure it may turn out to be: the function it
   * resolves to ends the check (call it once decided); undefined, refused unverified. A failure is
   * counted when its check ends, so before, every token that arrived meanwhile found the budget as it
   * was before them: 400 forged JWTs sent at once from one address (its share 10 a second) were all
   * verified, and so were 400 from 200 addresses (the budget 100). A token the budget would admit but
   * for the checks under way waits for them (a check takes milliseconds; a valid token spends
   * nothing), so an honest burst from one address is verified in turns, not refused.
   */
  async verifying(address: string | undefined): Promise<(() => void) | undefined> {
    const network = address === undefined ? undefined : clientNetwork(address);
    for (;;) {
      const admission = this.#admission(network);
      if (admission === "never") return undefined;
      if (admission === "now") return this.#check(network);
      await this.#nextEndOf(admission === "own" ? network : undefined);
      // Looked at again in the next turn of the event loop: a failure is counted by the caller of its check, after the check ends.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** When the next check under way of `network` (undefined: of any) ends. */
  #nextEndOf(network: string | undefined): Promise<void> {
    let next = network === undefined ? this.#nextEndAll : this.#nextEnd.get(network);
    if (!next) {
      let end!: () => void;
      const ended = new Promise<void>((resolve) => (end = resolve));
      next = { ended, end };
      if (network === undefined) this.#nextEndAll = next;
      else this.#nextEnd.set(network, next);
    }
    return next.ended;
  }

  /** Marks a check of `network` under way; the function it returns ends it. */
  #check(network: string | undefined): () => void {
    this.#checkingAll++;
    if (network !== undefined) this.#checking.set(network, (this.#checking.get(network) ?? 0) + 1);
    let decided = false;
    return () => {
      if (decided) return;
      decided = true;
      this.#checkingAll--;
      const all = this.#nextEndAll;
      this.#nextEndAll = undefined;
      all?.end();
      if (network === undefined) return;
      const left = this.#checking.get(network)! - 1;
      if (left === 0) this.#checking.delete(network);
      else this.#checking.set(network, left);
      const own = this.#nextEnd.get(network);
      this.#nextEnd.delete(network);
      own?.end();
    };
  }

  /**
   * Whether a new JWT of `network` is checked `now`, after the checks under way of its own network
   * (`own`) or of any (`all`) are decided, or `never` (refused unverified): what `admits` always
   * decided, with each check under way counted as a failure.
   */
  #admission(network: string | undefined): "now" | "own" | "all" | "never" {
    const checking = network === undefined ? 0 : (this.#checking.get(network) ?? 0);
    const units = network === undefined ? 0 : this.#byAddress.units(network);
    if (network !== undefined && units - checking < 1) return units >= 1 ? "own" : "never";
    const replica = this.#replica.units(ALL);
    if (replica - this.#checkingAll >= 1) return "now";
    // No failure in the last second, and none being checked: its bucket is full (or it has none).
    if (network !== undefined && units - checking >= this.#byAddress.capacity && this.#clean.take(CLEAN, 1)) return "now";
    if (replica >= 1) return "all";
    return network !== undefined && checking > 0 && units >= this.#byAddress.capacity ? "own" : "never";
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
