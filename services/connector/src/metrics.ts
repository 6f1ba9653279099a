import type { HealthReport } from "@manifold/contracts";
import { DURATION_BUCKETS, Gauge, HotCounter, HotHistogram, type Registry } from "@manifold/telemetry";

const CIRCUIT = { closed: 0, "half-open": 1, open: 2 } as const;
const STATUSES = ["up", "degraded", "down"] as const;

/** The connector's side of every call, and each upstream's health as this replica sees it. */
export class ConnectorMetrics {
  readonly #calls: HotCounter<"upstream" | "outcome">;
  readonly #duration: HotHistogram<"upstream" | "outcome">;
  readonly #health: Gauge;
  readonly #circuit: Gauge;

  constructor(registry: Registry) {
    this.#calls = new HotCounter({
      name: "manifold_connector_calls_total",
      help: "Calls this connector made to upstreams, by upstream and outcome (ok or the error code).",
      labelNames: ["upstream", "outcome"],
      registers: [registry],
    });
    this.#duration = new HotHistogram({
      name: "manifold_connector_call_duration_seconds",
      help: "Time from a call's arrival on the bus to its reply, at the connector.",
      labelNames: ["upstream", "outcome"],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.#health = new Gauge({
      name: "manifold_upstream_health",
      help: "1 for the upstream's current health status as seen by this replica, 0 for the others.",
      labelNames: ["upstream", "status"],
      registers: [registry],
    });
    this.#circuit = new Gauge({
      name: "manifold_upstream_circuit_state",
      help: "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.",
      labelNames: ["upstream"],
      registers: [registry],
    });
  }

  call(upstream: string, seconds: number, errorCode: string | undefined): void {
    this.#calls.inc({ upstream, outcome: errorCode ?? "ok" });
    this.#duration.observe({ upstream, outcome: errorCode === undefined ? "ok" : "error" }, seconds);
  }

  /** An upstream this replica no longer serves: its health and circuit are no one's to report (they stayed at their last values). */
  forget(upstream: string): void {
    for (const status of STATUSES) this.#health.remove({ upstream, status });
    this.#circuit.remove({ upstream });
  }

  health(report: HealthReport): void {
    // A goodbye (the upstream no longer served here) leaves its gauges as they were, not "down".
    if (report.stopped) return;
    for (const status of STATUSES) this.#health.set({ upstream: report.upstream, status }, report.status === status ? 1 : 0);
    this.#circuit.set({ upstream: report.upstream }, CIRCUIT[report.circuit]);
  }
}
