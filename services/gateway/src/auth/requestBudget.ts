import { ManifoldError } from "@manifold/contracts";
import { TokenBuckets, type Principal } from "@manifold/domain";
import { callerName } from "../heldByCaller.js";
import { listenedUris, MAX_LISTEN_URIS } from "../listenStreams.js";

/**
 * What a request costs against its caller's budget, by the lane that serves it: 1 when the fast
 * path answers it (`tools/call`, `tools/list`, a `server/discover` after the first), else 10 for each
 * of its messages (a 2025-03-26 batch's too), and 10 for a GET or DELETE, since an SDK serves them:
 * a ping cost ~70 µs here, a 2026-07-28 notification or uncached `server/discover` up to ~2 ms (the
 * SDK builds a server per request). Priced by name instead, a notification or a batch of
 * `tools/list` cost 1 a message and bought the SDK's work at a tenth of the price.
 */
export const SDK_MESSAGE_COST = 10;
export const FAST_COST = 1;
export const sdkCost = (body: unknown): number => SDK_MESSAGE_COST * (Array.isArray(body) ? body.length : 1) + FAST_COST * listenedResources(body);
/**
 * A 2026-07-28 listen stream's resource subscriptions: each is a request to an upstream, and cost
 * what a call does (before, 100 of them cost a listen request's 10 units: ~10,000 upstream requests
 * a second for one caller). Counted up to the 100 a stream may follow; more are refused as they are.
 */
const listenedResources = (body: unknown): number => {
  const wanted = listenedUris(body);
  return (body as { method?: unknown } | undefined)?.method === "subscriptions/listen" && Array.isArray(wanted) ? Math.min(wanted.length, MAX_LISTEN_URIS) : 0;
};

/**
 * What a wide or large body costs beyond its messages, whichever lane serves it: a unit for every
 * 10 object keys past the first 100, and for every 4 KiB past the first 16 KiB. Each key costs a
 * parse and every SDK schema walk (~4–9 µs here, about a unit's worth of a ping), so a ping of
 * 10,000 keys cost 10 units before and now costs about a second's budget (`takeWidth` caps it
 * at half: a body within its bounds is never refused for its width, its caller waits instead).
 * Ordinary requests (tens of keys, a few KiB, a 2026-07-28 envelope's included) pay nothing more.
 */
const FREE_KEYS = 100;
const KEYS_PER_UNIT = 10;
const FREE_LENGTH = 16_384;
const LENGTH_PER_UNIT = 4_096;
export const widthCost = (keys: number, length: number): number =>
  Math.floor(Math.max(0, keys - FREE_KEYS) / KEYS_PER_UNIT) + Math.floor(Math.max(0, length - FREE_LENGTH) / LENGTH_PER_UNIT);

/**
 * Each caller's requests per second on this replica, whatever they ask (`GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL`):
 * the calls per minute a grant sets count only what goes upstream, and one consumer sending pings in
 * batches of 100 on 32 connections raised another tenant's median call from 12 ms to 2.6 s. A token
 * bucket per caller (`TokenBuckets`): `perSecond` units, refilled continuously, a second's worth at most.
 */
export class RequestBudget {
  readonly #buckets: TokenBuckets;

  constructor(
    readonly perSecond: number,
    now?: () => number,
  ) {
    this.#buckets = new TokenBuckets(perSecond, { now });
  }

  /** Takes `cost` units of the caller's budget, or refuses the request (`rate_limited`, retry in a second). */
  take(principal: Principal, cost: number): void {
    if (cost > this.perSecond) {
      throw new ManifoldError("invalid_request", `this request costs ${cost} units, more than the ${this.perSecond} a caller has a second on a gateway replica; send fewer messages at once`);
    }
    if (!this.#buckets.take(principal.id, cost)) {
      throw new ManifoldError("rate_limited", `${callerName(principal)} sent more requests than this gateway replica serves one caller (${this.perSecond} units a second); retry in a second`, {
        retryAfterSeconds: 1,
      });
    }
  }

  /**
   * Takes what a body's width costs (`widthCost`), at most half a second's worth, so that a body
   * within its bounds is never refused for its width (its lane's own charge still fits after it):
   * its caller waits instead, ~2 of the widest bodies a second.
   */
  takeWidth(principal: Principal, cost: number): void {
    if (cost > 0) this.take(principal, Math.min(cost, Math.floor(this.perSecond / 2)));
  }
}
