import { KvBucket, ManifoldError, RATE_WINDOW_MS as WINDOW_MS } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { createHash } from "node:crypto";
import { openBucket } from "../openBucket.js";

/**
 * Calls per minute per (principal, virtual server), counted in a NATS KV bucket so the
 * limit holds across gateway replicas: fixed one-minute windows, incremented with
 * compare-and-set. Only consumers whose grant sets a limit pay for the round trip.
 */
export class RateLimiter {
  readonly #kv: KV;
  /**
   * The last take queued per window key on this replica: takes of one key run one after another
   * here, so compare-and-set only ever races another replica. Racing each other, 400 concurrent
   * calls of one consumer had 152 refused as "contended" under a limit of 1,000.
   */
  readonly #tails = new Map<string, Promise<void>>();
  /** The count and revision this replica last wrote per key (a few keys per window; older windows are dropped). */
  readonly #written = new Map<string, { count: number; revision: number }>();
  private constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Its bucket keeps a window's counts two windows long (`KV_BUCKETS`). */
  static async open(nc: NatsConnection, logger: Logger): Promise<RateLimiter> {
    return new RateLimiter(await openBucket(nc, KvBucket.rate, logger));
  }

  /** Counts `calls` calls (a batch's, all or none); throws `rate_limited` (with the seconds to wait) when they do not fit in the window. */
  take(principalId: string, virtualServer: string, limit: number, calls = 1, now = Date.now()): Promise<void> {
    const window = Math.floor(now / WINDOW_MS);
    const who = createHash("sha256").update(principalId).digest("base64url").slice(0, 22);
    const key = `${virtualServer}.${who}.${window}`;
    const previous = this.#tails.get(key);
    const taken = previous ? previous.then(() => this.#take(key, virtualServer, window, limit, calls, now)) : this.#take(key, virtualServer, window, limit, calls, now);
    const tail = taken.catch(() => undefined);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return taken;
  }

  async #take(key: string, virtualServer: string, window: number, limit: number, calls: number, now: number): Promise<void> {
    // What this replica last wrote for the key: the next take tries it without reading first (one
    // round trip, not two); a write by another replica since makes it fail, and it reads.
    let last = this.#written.get(key);
    for (let attempt = 0; attempt < 20; attempt++) {
      if (!last) {
        const entry = await this.#kv.get(key);
        last = entry && entry.operation === "PUT" ? { count: Number(entry.string()), revision: entry.revision } : undefined;
      }
      const count = last?.count ?? 0;
      if (count + calls > limit) {
        const retryAfter = Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000));
        throw new ManifoldError("rate_limited", `rate limit of ${limit} calls per minute on virtual server '${virtualServer}' reached; retry in ${retryAfter} s`, {
          retryAfterSeconds: retryAfter,
        });
      }
      try {
        const revision = last ? await this.#kv.update(key, String(count + calls), last.revision) : await this.#kv.create(key, String(calls));
        this.#remember(key, { count: count + calls, revision });
        return;
      } catch {
        // Another replica counted first: read again.
        last = undefined;
        this.#written.delete(key);
      }
    }
    throw new ManifoldError("rate_limited", `rate limit on virtual server '${virtualServer}' is contended; retry`, { retryAfterSeconds: 1 });
  }

  #remember(key: string, written: { count: number; revision: number }): void {
    // Bounded: past 10,000 keys (callers × virtual servers in a window) it starts again, at one read each.
    if (this.#written.size >= 10_000) this.#written.clear();
    this.#written.set(key, written);
  }
}
