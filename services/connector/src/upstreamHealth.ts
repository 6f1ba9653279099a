import type { HealthReport } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import type { CircuitBreaker } from "./circuitBreaker.js";
import { healthOf } from "./health.js";
import type { ToolShares } from "./toolShares.js";
import type { UpstreamSession } from "./upstreamSession.js";

export interface HealthDeps {
  upstream: string;
  replica: string;
  /** The upstream's shared session: failures of callers' own sessions never show in its health. */
  session: UpstreamSession;
  /** The upstream's breaker, and its tools whose own circuits are open or probing. */
  breaker: CircuitBreaker;
  tools: Pick<ToolShares, "troubled">;
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
  readonly #upstream: string;
  readonly #replica: string;
  readonly #session: UpstreamSession;
  readonly #breaker: CircuitBreaker;
  readonly #tools: Pick<ToolShares, "troubled">;
  readonly #publish: (report: HealthReport) => void;
  readonly #logger: Logger;
  readonly #heartbeat: NodeJS.Timeout;
  /** Why the last discovery could not list the upstream; undefined when it could. */
  #listingFailed: string | undefined;
  #lastHealth: string | undefined;

  constructor(deps: HealthDeps) {
    this.#upstream = deps.upstream;
    this.#replica = deps.replica;
    this.#session = deps.session;
    this.#breaker = deps.breaker;
    this.#tools = deps.tools;
    this.#publish = deps.publish;
    this.#logger = deps.logger;
    this.#heartbeat = setInterval(() => this.report(true), deps.heartbeatMs).unref();
  }

  /** Publishes the health if it changed since the last report; a `heartbeat` publishes it either way. */
  report(heartbeat = false): void {
    const { status, reason } = healthOf(this.#session, this.#breaker, this.#tools.troubled, this.#listingFailed);
    const key = `${status}|${reason ?? ""}|${this.#breaker.state}`;
    if (!heartbeat && key === this.#lastHealth) return;
    if (key !== this.#lastHealth) this.#logger.info({ status, reason, circuit: this.#breaker.state }, "upstream health");
    this.#lastHealth = key;
    this.#publish({
      upstream: this.#upstream,
      replica: this.#replica,
      status,
      ...(reason ? { reason } : {}),
      circuit: this.#breaker.state,
      ...(this.#session.protocolVersion ? { protocolVersion: this.#session.protocolVersion } : {}),
      at: new Date().toISOString(),
    });
  }

  /** Whether the last discovery could list the upstream (`reason`: why not); its health says so. */
  listed(reason: string | undefined): void {
    if (reason === this.#listingFailed) return;
    this.#listingFailed = reason;
    this.report();
  }

  close(): void {
    clearInterval(this.#heartbeat);
  }
}
