import { ManifoldError } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import { callerName } from "../heldByCaller.js";

/**
 * What a request costs against its caller's budget: `tools/call`, `tools/list` and `server/discover`,
 * which the fast path answers, 1 each; any other request 10, since an SDK serves it (a ping cost ~70 µs
 * here; a `server/discover` the SDK answers, ~2 ms); a notification or a response 1. A batch costs its messages' sum.
 */
export const SDK_REQUEST_COST = 10;
const FAST_METHODS: ReadonlySet<unknown> = new Set(["tools/call", "tools/list", "server/discover"]);
const costOfMessage = (message: unknown): number => {
  const { id, method } = (message ?? {}) as { id?: unknown; method?: unknown };
  return id === undefined || method === undefined || FAST_METHODS.has(method) ? 1 : SDK_REQUEST_COST;
};

/** The cost of a request's body (a message or a 2025-03-26 batch, checked already), or of a GET or DELETE. */
export function requestCost(httpMethod: string, body: unknown): number {
  if (httpMethod !== "POST") return SDK_REQUEST_COST;
  if (!Array.isArray(body)) return costOfMessage(body);
  let cost = 0;
  for (const message of body) cost += costOfMessage(message);
  return cost;
}

/** Buckets are forgotten once full again, when there are more than this many. */
const MAX_BUCKETS = 10_000;

/**
 * Each caller's requests per second on this replica, whatever they ask (`GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL`):
 * the calls per minute a grant sets count only what goes upstream, and one consumer sending pings in
 * batches of 100 on 32 connections raised another tenant's median call from 10 ms to 700 ms (2026-07-28
 * `server/discover`: to 213 ms). A token bucket per caller: `perSecond` units, refilled continuously,
 * a second's worth at most.
 */
export class RequestBudget {
  readonly #buckets = new Map<string, { units: number; at: number }>();

  constructor(
    readonly perSecond: number,
    readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes `cost` units of the caller's budget, or refuses the request (`rate_limited`, retry in a second). */
  take(principal: Principal, cost: number): void {
    const now = this.now();
    let bucket = this.#buckets.get(principal.id);
    if (bucket) {
      bucket.units = Math.min(this.perSecond, bucket.units + ((now - bucket.at) * this.perSecond) / 1000);
      bucket.at = now;
    } else {
      if (this.#buckets.size >= MAX_BUCKETS) this.#forgetFull(now);
      this.#buckets.set(principal.id, (bucket = { units: this.perSecond, at: now }));
    }
    if (cost > this.perSecond) {
      throw new ManifoldError("invalid_request", `this request costs ${cost} units, more than the ${this.perSecond} a caller has a second on a gateway replica; send fewer messages at once`);
    }
    if (bucket.units < cost) {
      throw new ManifoldError("rate_limited", `${callerName(principal)} sent more requests than this gateway replica serves one caller (${this.perSecond} units a second); retry in a second`, {
        retryAfterSeconds: 1,
      });
    }
    bucket.units -= cost;
  }

  /** A bucket full again is no different from none. */
  #forgetFull(now: number): void {
    for (const [id, bucket] of this.#buckets) if (bucket.units + ((now - bucket.at) * this.perSecond) / 1000 >= this.perSecond) this.#buckets.delete(id);
  }
}
