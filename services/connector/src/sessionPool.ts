import { credentialFingerprint, type UpstreamTransport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { Pool } from "undici";
import { createHash } from "node:crypto";
import { CircuitBreaker } from "./circuitBreaker.js";
import type { ScopedSecrets } from "@manifold/contracts";
import type { ParamHeader } from "@manifold/contracts";
import { createTransport } from "./transports.js";
import { withholdHeaders } from "./withheldValues.js";
import { UpstreamSession, type SessionState } from "./upstreamSession.js";

export interface PoolOptions {
  /** Most sessions opened for agents' pass-through credentials, per upstream. */
  maxUserSessions: number;
  /** A pass-through session unused this long is closed. */
  userSessionIdleMs: number;
  /** How long the era probe may take (a stdio upstream that stays silent is 2025-era). */
  probeTimeoutMs: number;
  /** How long a connection's handshake may take (`CONNECT_TIMEOUT_MS`). */
  connectTimeoutMs: number;
  /** Each caller's own session has its own circuit breaker, set like the upstream's. */
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** The most an upstream's answer may hold (the bus's `max_payload`): larger ones are cut off while read. */
  maxAnswerBytes?: number | undefined;
  /** What a session may send of its own per second before it is cut as a flood (`InboundBudget`). */
  inboundPerSecond?: number | undefined;
  /** The pass-through header names (lower case) the operator says carry no credential (`plainPassthroughHeaders`). */
  plainPassthrough?: ReadonlySet<string> | undefined;
}

/** A session and the breaker its failures count against (none: the upstream's own, for the shared session). */
export interface PooledSession {
  readonly session: UpstreamSession;
  /**
   * A caller's credentials, arguments or header values can make its own session fail; those
   * failures must not cut everyone else off the upstream, so they count here only.
   */
  readonly breaker: CircuitBreaker | undefined;
  lastUsed: number;
}

type UserSession = PooledSession & {
  readonly breaker: CircuitBreaker;
  /** Whose call opened it (`Manifold-Caller`): a full pool evicts from the caller holding the most. */
  readonly owner: string;
  /** `credentialFingerprint` of the session's bearer token, if it has one: how a dropped token finds it. */
  readonly bearer: string | undefined;
  /** Gives back the session's credential values (`withhold`) when it ends. */
  readonly withheld: () => void;
  /** Calls running on it (`hold`): such a session is not idle, and is evicted last. */
  running: number;
};

/** What `hold` gives back for the shared session, which is never idle: one function for every call. */
const NOTHING = () => undefined;

const BEARER = /^bearer\s+(\S+)\s*$/i;
const bearerOf = (headers: Readonly<Record<string, string>>) => {
  for (const [name, value] of Object.entries(headers)) {
    const token = name.toLowerCase() === "authorization" ? BEARER.exec(value)?.[1] : undefined;
    if (token) return credentialFingerprint(token);
  }
  return undefined;
};

/** Sessions are keyed by a digest of the credential set, so the map never holds a token. */
const credentialKey = (headers: Readonly<Record<string, string>>) => {
  const hash = createHash("sha256");
  for (const name of Object.keys(headers).sort()) hash.update(name.toLowerCase()).update("\0").update(headers[name]!).update("\0");
  return hash.digest("base64url");
};

/**
 * The sessions to one upstream: a shared one for calls without pass-through headers, and
 * one per distinct credential set, so two agents' tokens never share an upstream session
 * (and one per caller whose roots may be asked, so one agent's roots never answer another's).
 * Pass-through sessions are bounded and closed when idle; a full pool evicts the least recently
 * used session among those of the callers that opened the most, so one caller rotating
 * credentials cannot push other callers' sessions out. Evicted and idle sessions are ended at the upstream too (DELETE),
 * not left open there: 2,000 rotated values had left 2,003 sessions open at the upstream.
 */
export class SessionPool {
  readonly shared: UpstreamSession;
  readonly #sharedEntry: PooledSession;
  readonly #users = new Map<string, UserSession>();
  /** Sessions in `#users` per owner. */
  readonly #owned = new Map<string, number>();
  readonly #open: (headers?: Readonly<Record<string, string>>) => UpstreamSession;
  readonly #options: PoolOptions;
  readonly #sweeper: NodeJS.Timeout;
  /** Keep-alive connections for direct calls, shared by every session of this upstream. */
  readonly #http: Pool | undefined;
  /** The upstream's header parameters per tool (modern Streamable HTTP), learned when its tools are listed. */
  readonly #paramHeaders = new Map<string, readonly ParamHeader[]>();

  constructor(
    name: string,
    spec: UpstreamTransport,
    secrets: ScopedSecrets,
    logger: Logger,
    options: PoolOptions,
    onSharedState: (state: SessionState, reason?: string) => void,
  ) {
    this.#options = options;
    this.#http = spec.type === "streamable-http" ? new Pool(new URL(spec.url).origin, { connections: 128, keepAliveTimeout: 30_000 }) : undefined;
    this.#open = (headers) => {
      const open = (inPlaceProbe: boolean) =>
        createTransport(spec, secrets, logger, headers, { inPlaceProbe, maxAnswerBytes: options.maxAnswerBytes, inboundPerSecond: options.inboundPerSecond, connectTimeoutMs: options.connectTimeoutMs });
      const session = new UpstreamSession(name, open, headers ? logger.child({ session: "pass-through" }) : logger, {
        protocol: spec.protocol ?? "auto",
        probeTimeoutMs: options.probeTimeoutMs,
        connectTimeoutMs: options.connectTimeoutMs,
        pool: this.#http,
        paramHeaders: this.#paramHeaders,
        followChanges: !headers,
        // An unreachable HTTP upstream is tried again at least every cooldown, as its open circuit
        // lets a probe through; a stdio upstream's attempts each spawn its process (a crash loop).
        maxBackoffMs: spec.type === "stdio" ? undefined : options.breakerCooldownMs,
        onStateChange: headers ? undefined : onSharedState,
      });
      session.start();
      return session;
    };
    this.shared = this.#open();
    this.#sharedEntry = { session: this.shared, breaker: undefined, lastUsed: 0 };
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(options.userSessionIdleMs / 2, 1_000)).unref();
  }

  /**
   * The session for a call carrying these pass-through headers (the shared one when none), or
   * of one caller when `partition` names it (a caller whose roots may be asked, see `HeldCall`).
   */
  sessionFor(headers: Readonly<Record<string, string>> | undefined, partition?: string, caller = ""): PooledSession {
    if ((!headers || Object.keys(headers).length === 0) && partition === undefined) return this.#sharedEntry;
    headers ??= {};
    const key = partition === undefined ? credentialKey(headers) : `${credentialKey(headers)}.${partition}`;
    const existing = this.#users.get(key);
    const now = Date.now();
    if (existing) {
      // Re-insert to keep the map in least-recently-used order.
      this.#users.delete(key);
      existing.lastUsed = now;
      this.#users.set(key, existing);
      return existing;
    }
    if (this.#users.size >= this.#options.maxUserSessions) this.#evictOne(caller);
    const user: UserSession = {
      // A caller's own credentials, withheld from what the upstream answers while the session lives.
      withheld: withholdHeaders(headers, this.#options.plainPassthrough),
      session: this.#open(headers),
      breaker: new CircuitBreaker(this.#options.breakerThreshold, this.#options.breakerCooldownMs),
      lastUsed: now,
      bearer: bearerOf(headers),
      owner: caller,
      running: 0,
    };
    this.#users.set(key, user);
    this.#owned.set(caller, (this.#owned.get(caller) ?? 0) + 1);
    return user;
  }

  /**
   * Marks a call running on `pooled` until the returned function is called. A call may run for its
   * upstream's whole budget (up to an hour), far past the idle time: its session was swept from under
   * it after 5 minutes, the call cut and the session's credential values no longer withheld from its error.
   */
  hold(pooled: PooledSession): () => void {
    const user = pooled as Partial<UserSession>;
    if (user.running === undefined) return NOTHING;
    user.running++;
    return () => {
      user.running!--;
      pooled.lastUsed = Date.now();
    };
  }

  /**
   * Ends the least recently used session among those of the callers holding the most (`caller`,
   * about to open one, counted with it), so a caller at parity with the largest ends its own;
   * one with no call running first.
   */
  #evictOne(caller: string): void {
    let most = (this.#owned.get(caller) ?? 0) + 1;
    for (const count of this.#owned.values()) most = Math.max(most, count);
    const largest = (owner: string) => (this.#owned.get(owner) ?? 0) + (owner === caller ? 1 : 0) === most;
    // The map is in least-recently-used order.
    let busy: [string, UserSession] | undefined;
    for (const [key, user] of this.#users) {
      if (!largest(user.owner)) continue;
      if (user.running > 0) {
        busy ??= [key, user];
        continue;
      }
      this.#remove(key, user);
      return;
    }
    if (busy) this.#remove(...busy);
  }

  #remove(key: string, user: UserSession): void {
    this.#users.delete(key);
    const left = (this.#owned.get(user.owner) ?? 1) - 1;
    if (left > 0) this.#owned.set(user.owner, left);
    else this.#owned.delete(user.owner);
    user.withheld();
    void user.session.close({ terminate: true });
  }

  /**
   * Ends at once the sessions opened with a token the gateway dropped (revoked, disconnected,
   * replaced): a 2025 upstream is told its session ended (DELETE), instead of it staying open
   * until idle. Says how many it ended.
   */
  dropCredential(fingerprint: string): number {
    let ended = 0;
    for (const [key, user] of this.#users) {
      if (user.bearer !== fingerprint) continue;
      this.#remove(key, user);
      ended++;
    }
    return ended;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const all = [this.shared, ...[...this.#users.values()].map((u) => (u.withheld(), u.session))];
    this.#users.clear();
    this.#owned.clear();
    await Promise.all(all.map((s) => s.close()));
    await this.#http?.close();
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#options.userSessionIdleMs;
    for (const [key, user] of this.#users) {
      if (user.running > 0 || user.lastUsed >= cutoff) continue;
      this.#remove(key, user);
    }
  }
}
