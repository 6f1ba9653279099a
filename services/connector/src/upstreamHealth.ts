import type { HealthReport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { CircuitBreaker } from "./circuitBreaker.js";
import { healthOf } from "./health.js";
import type { UpstreamLiveness } from "./upstreamLiveness.js";
import type { ToolShares } from "./toolShares.js";
import type { UpstreamSession } from "./upstreamSession.js";

export interface HealthDeps {
  upstream: string;
  replica: string;
  /** The upstream's shared session: failures of callers' own sessions never show in its health. */
  session: UpstreamSession;
  /** The upstream's breaker, and its tools whose own circuits are open or probing. */
  breaker: CircuitBreaker;
  tools: Pick<ToolShares, "troubled" | "settle">;
  /** Whether the upstream answers at all (`UpstreamLiveness`). */
  liveness: Pick<UpstreamLiveness, "silent">;
  heartbeatMs: number;
  publish: (report: HealthReport) => void;
  logger: Logger;
}

/**
 * This replica's health reports for one upstream (`healthOf`): published on every heartbeat and
 * whenever the health changes (after a call, a state change of the shared session, a discovery),
 * logged only when it changes.
 */
export class UpstreamHealth {
  readonly #deps: HealthDeps;
  readonly #heartbeat: NodeJS.Timeout;
  /** Why the last discovery could not list the upstream; undefined when it could. */
  #listingFailed: string | undefined;
  #last: { status: string; reason: string | undefined; circuit: string } | undefined;

  constructor(deps: HealthDeps) {
    this.#deps = deps;
    this.#heartbeat = setInterval(() => {
      deps.tools.settle(Date.now());
      this.report(true);
    }, deps.heartbeatMs).unref();
  }

  /** Publishes the health if it changed since the last report; a `heartbeat` publishes it either way. */
  report(heartbeat = false): void {
    const { session, breaker, logger } = this.#deps;
    const { status, reason } = healthOf(session, breaker, this.#deps.tools.troubled, this.#listingFailed, this.#deps.liveness.silent);
    // Compared member by member: after nearly every call nothing changed, and no key is built for it.
    const last = this.#last;
    const changed = last === undefined || last.status !== status || last.reason !== reason || last.circuit !== breaker.state;
    if (!heartbeat && !changed) return;
    if (changed) {
      logger.info({ status, reason, circuit: breaker.state }, "upstream health");
      this.#last = { status, reason, circuit: breaker.state };
    }
    this.#deps.publish({
      upstream: this.#deps.upstream,
      replica: this.#deps.replica,
      status,
      ...(reason ? { reason } : {}),
      circuit: breaker.state,
      ...(session.protocolVersion ? { protocolVersion: session.protocolVersion } : {}),
      ...(session.resourceSubscribe === undefined ? {} : { resourceSubscribe: session.resourceSubscribe }),
      at: new Date().toISOString(),
    });
  }

  /** Whether the last discovery could list the upstream (`reason`: why not); its health says so. */
  listed(reason: string | undefined): void {
    if (reason === this.#listingFailed) return;
    this.#listingFailed = reason;
    this.report();
  }

  /**
   * Stops the heartbeat and says goodbye: a gateway takes a replica it stops hearing for one that
   * may come back (frozen, partitioned) for `HEALTH_STALE_MS`, and one that said goodbye for gone
   * at once, so a task it held is told gone promptly. Published before the subscriptions drain.
   */
  close(): void {
    clearInterval(this.#heartbeat);
    const { upstream, replica, breaker, publish } = this.#deps;
    publish({ upstream, replica, status: "down", reason: "replica stopped", circuit: breaker.state, stopped: true, at: new Date().toISOString() });
  }
}
