import type { HealthReport } from "@manifold/contracts";

export interface UpstreamHealth {
  status: "up" | "degraded" | "down" | "unknown";
  replicas: HealthReport[];
}

/**
 * Folds connector replicas' health reports into one view per upstream. Reports older than
 * `staleMs` (a replica that stopped without saying so) are ignored.
 */
export class HealthBoard {
  readonly #reports = new Map<string, Map<string, HealthReport>>();
  constructor(readonly staleMs: number) {}

  record(report: HealthReport): void {
    let replicas = this.#reports.get(report.upstream);
    if (!replicas) this.#reports.set(report.upstream, (replicas = new Map()));
    replicas.set(report.replica, report);
  }

  of(upstream: string, now = Date.now()): UpstreamHealth {
    const fresh = [...(this.#reports.get(upstream)?.values() ?? [])].filter((r) => now - Date.parse(r.at) <= this.staleMs);
    if (fresh.length === 0) return { status: "unknown", replicas: [] };
    const statuses = new Set(fresh.map((r) => r.status));
    const status = statuses.size === 1 ? fresh[0]!.status : statuses.has("up") || statuses.has("degraded") ? "degraded" : "down";
    return { status, replicas: fresh };
  }
}
