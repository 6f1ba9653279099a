import { ManifoldError } from "@manifold/contracts";
import { mapUpstreamError, saysUnreachable } from "./upstreamErrors.js";

/** What a liveness probe needs of the shared session: a bounded `ping` (false: no connection to ask on). */
export type Ping = (timeoutMs: number) => Promise<boolean>;

/**
 * How long the probe waits between pings while the upstream answers nothing: 1 s after the first
 * unanswered ping, twice as long after each next one, at most `SILENT_PAUSE_MAX_MS` (a stdio
 * upstream's) or the pause the connector gives (an HTTP upstream's: the breaker's cooldown, 5 s).
 * It shows `up` again within about that of answering a ping, at once when anything else on the
 * shared session is answered. Paced when a 2025-era HTTP or legacy SSE ping the SDK gave up on was
 * not ended (its POST and its `notifications/cancelled` each held a socket for undici's 300 s: ~100
 * per hung upstream pinged every second). `AbandonedRequests` now ends both (at the ping's timeout
 * and after `CONNECT_TIMEOUT_MS`): pinged every second, a hung upstream held 1–2 more sockets over
 * 8 s, not 8. The pacing stays for the hung upstream's and the connector's sake; capped at 30 s, an
 * idle HTTP upstream that ran again was `down` for 26 s more, now ~5 s (`upstreamProbe.e2e`): a
 * ping every 5 s costs it one small request.
 */
export const SILENT_PAUSE_MS = 1_000;
export const SILENT_PAUSE_MAX_MS = 30_000;

/**
 * Whether an upstream answers at all, for its health. A hung upstream (its process stopped, a
 * stalled host) keeps its connection, so the session stays "connected"; its calls time out, and a
 * timeout counts against the tool's own circuit, never the upstream's (a slow tool is not a down
 * upstream): health said `degraded` for good, however long it answered nothing. A timeout on the
 * shared session now has the upstream asked a `ping`, bounded by `timeoutMs`: answered, it is alive
 * (the tool is slow); unanswered, the upstream is `down` ("answers nothing") and pinged again at a
 * paced rate (`SILENT_PAUSE_MS`) until it answers, or anything else on the shared session does. One
 * ping at a time, and none while nothing timed out: a healthy upstream is never pinged. A ping that
 * cannot reach the upstream (`unreachable`) is the connector's own verdict on it, where one call's
 * 502 or cut connection was not: its calls are refused at once until a ping or anything else is answered.
 */
export class UpstreamLiveness {
  readonly #ping: Ping;
  readonly #timeoutMs: number;
  readonly #changed: () => void;
  readonly #maxPauseMs: number;
  #silent: string | undefined;
  #unreachable: string | undefined;
  #lastTimeout: string | undefined;
  #probing = false;
  #closed = false;
  #pause: NodeJS.Timeout | undefined;
  /** When the pause the probe is in ends and its next ping goes (past while a ping is under way). */
  #nextPingAt = 0;
  #wake: (() => void) | undefined;

  constructor(ping: Ping, timeoutMs: number, changed: () => void, maxPauseMs = SILENT_PAUSE_MAX_MS) {
    this.#ping = ping;
    this.#timeoutMs = timeoutMs;
    this.#changed = changed;
    this.#maxPauseMs = maxPauseMs;
  }

  /** Why the upstream counts as down: it answered neither a call nor a ping. */
  get silent(): string | undefined {
    return this.#silent;
  }

  /** Why the upstream cannot be reached (`a ping failed (…)`), while its last ping said so and nothing answered since. */
  get unreachable(): string | undefined {
    return this.#unreachable;
  }

  /**
   * Refuses what would be asked on the shared session while the upstream cannot be reached
   * (`unreachable`): `upstream_unavailable` at once, for calls, reads, prompts, completions and task
   * requests alike, and counted against no circuit by its callers (an open circuit would keep
   * refusing past the ping that finds the upstream back). `retryAfterMs` is when that can be known:
   * the rest of the pause the probe is in, or the least pause while a ping is under way; never 0,
   * at most the longest pause.
   */
  refuseIfUnreachable(target: string, now = Date.now()): void {
    if (this.#unreachable === undefined) return;
    const untilPing = this.#nextPingAt - now;
    const retryAfterMs = untilPing > 0 ? Math.ceil(Math.min(untilPing, this.#maxPauseMs)) : SILENT_PAUSE_MS;
    throw new ManifoldError("upstream_unavailable", `${target} cannot be reached: ${this.#unreachable}`, { retryAfterMs });
  }

  /** A call, request or listing on the shared session timed out, or may have been cut alone (`reason`): the upstream is pinged. */
  timedOut(reason: string): void {
    this.#lastTimeout = reason;
    if (!this.#probing && !this.#closed) void this.#probe();
  }

  /** The upstream answered something on the shared session. */
  answered(): void {
    if (this.#silent === undefined) return;
    this.#silent = undefined;
    this.#unreachable = undefined;
    this.#changed();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#pause);
    this.#wake?.();
  }

  async #probe(): Promise<void> {
    this.#probing = true;
    let pause = SILENT_PAUSE_MS;
    try {
      while (!this.#closed) {
        let unreachable: string | undefined;
        const silent = await this.#ping(this.#timeoutMs).then(
          () => undefined,
          // No answer is silence, and so is a ping that cannot reach the upstream (a proxy's 502 for it,
          // a refused or cut connection): a request so answered may have been one caller's alone
          // (`mayBeOneRequests`), the connector's own ping is not. An error answer is an answer.
          (error: unknown) => {
            const mapped = mapUpstreamError(error, "", this.#timeoutMs);
            if (mapped.code === "upstream_timeout") return `answers nothing: no answer to a ping within ${this.#timeoutMs} ms, after ${this.#lastTimeout ?? "a request timed out"}`;
            if (!saysUnreachable(mapped)) return undefined;
            unreachable = `a ping failed (${mapped.message.trim()})`;
            return `cannot be reached: ${unreachable}, after ${this.#lastTimeout ?? "a request failed"}`;
          },
        );
        if (silent === undefined) return this.answered();
        this.#unreachable = unreachable;
        if (this.#silent === undefined) {
          this.#silent = silent;
          this.#changed();
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          this.#nextPingAt = Date.now() + pause;
          this.#pause = setTimeout(resolve, pause).unref();
        });
        pause = Math.min(pause * 2, this.#maxPauseMs);
      }
    } finally {
      this.#probing = false;
    }
  }
}
