import { RegistryLimits, type HealthReport } from "@manifold/contracts";

export interface UpstreamHealth {
  status: "up" | "degraded" | "down" | "unknown";
  replicas: HealthReport[];
}

/** Replicas of one upstream the board keeps, and upstreams: past either, the one heard from longest ago gives way. */
export const MAX_REPLICAS_PER_UPSTREAM = 64;
export const MAX_UPSTREAMS = RegistryLimits.upstreams;

/**
 * Folds connector replicas' health reports into one view per upstream. Reports older than
 * `staleMs` (a replica that stopped without saying so), or dated further ahead than that (one
 * dated years ahead would never go stale), are ignored.
 */
export class HealthBoard {
  readonly #reports = new Map<string, Map<string, HealthReport>>();
  /** `startedAt`: when this board began to listen (a replica alive then beats within `staleMs`). */
  constructor(
    readonly staleMs: number,
    readonly startedAt = Date.now(),
  ) {}

  record(report: HealthReport): void {
    // Re-inserted, so each map's order is the order its keys were last heard from.
    const replicas = this.#reports.get(report.upstream) ?? new Map<string, HealthReport>();
    this.#reports.delete(report.upstream);
    this.#reports.set(report.upstream, replicas);
    replicas.delete(report.replica);
    replicas.set(report.replica, report);
    if (replicas.size > MAX_REPLICAS_PER_UPSTREAM) replicas.delete(replicas.keys().next().value!);
    if (this.#reports.size > MAX_UPSTREAMS) this.#reports.delete(this.#reports.keys().next().value!);
  }

  /**
   * Whether `replica` of `upstream` is away rather than gone: heard from within `staleMs` and not
   * said goodbye (`HealthReport.stopped`). A replica nats-server dropped (frozen, partitioned) is
   * away until then. One never heard from is away while the board is younger than `staleMs` (a
   * gateway started while it was frozen has not heard it beat yet: before, it was told gone, and
   * its task's agent started the call again), and gone after.
   */
  away(upstream: string, replica: string, now = Date.now()): boolean {
    const last = this.#reports.get(upstream)?.get(replica);
    if (last === undefined) return now - this.startedAt < this.staleMs;
    return !last.stopped && this.#fresh(last, now);
  }

  #fresh(report: HealthReport, now: number): boolean {
    return Math.abs(now - Date.parse(report.at)) <= this.staleMs;
  }

  /**
   * Whether the upstream takes resource subscriptions, as its fresh replicas' sessions declared
   * (`resources.subscribe`): true when one did, false when all that said did not, undefined while none has said.
   */
  subscribes(upstream: string, now = Date.now()): boolean | undefined {
    let said: boolean | undefined;
    for (const report of this.of(upstream, now).replicas) if (report.resourceSubscribe !== undefined) said = said === true || report.resourceSubscribe;
    return said;
  }

  of(upstream: string, now = Date.now()): UpstreamHealth {
    const fresh = [...(this.#reports.get(upstream)?.values() ?? [])].filter((r) => !r.stopped && this.#fresh(r, now));
    if (fresh.length === 0) return { status: "unknown", replicas: [] };
    const statuses = new Set(fresh.map((r) => r.status));
    const status = statuses.size === 1 ? fresh[0]!.status : statuses.has("up") || statuses.has("degraded") ? "degraded" : "down";
    return { status, replicas: fresh };
  }
}
