import { CommandType, DiscoveryReport, ManifoldError, REGISTRY_QUEUE, Subjects } from "@manifold/contracts";
import { replyWithError, type NatsConnection } from "@manifold/bus";
import { pendingDrift, type CatalogProjection } from "@manifold/domain";
import type { Logger } from "@manifold/telemetry";
import type { CommandHandler } from "./commandHandler.js";

/**
 * Adopts drift that the virtual servers' policies allow: with `auto-compatible`, a compatible
 * change is re-pinned at once; everything else waits for an admin's accept or reject.
 */
export function createAdopter(projection: CatalogProjection, execute: CommandHandler, logger: Logger) {
  return async function adoptCompatible(upstream?: string): Promise<void> {
    for (const vs of [...projection.virtualServers()]) {
      if (vs.driftPolicy !== "auto-compatible") continue;
      for (const drift of pendingDrift(vs, projection)) {
        if (drift.classification !== "compatible" || (upstream && drift.upstream !== upstream)) continue;
        await execute({ type: CommandType.acceptDrift, name: vs.name, exposedName: drift.exposedName }).then(
          () => logger.info({ virtualServer: vs.name, tool: drift.exposedName }, "adopted compatible change"),
          (err: unknown) => logger.warn({ err, virtualServer: vs.name, tool: drift.exposedName }, "could not adopt compatible change"),
        );
      }
    }
  };
}

export type Adopter = ReturnType<typeof createAdopter>;

/**
 * Connectors report an upstream's tools after a `list_changed`, a reconnect, or on schedule.
 * One registry replica (queue group) records what changed (nothing when nothing did) and
 * adopts what policies allow.
 */
export function serveDiscoveryReports(nc: NatsConnection, execute: CommandHandler, adopt: Adopter, logger: Logger) {
  return nc.subscribe(Subjects.registryDiscovered, {
    queue: REGISTRY_QUEUE,
    callback: (err, msg) => {
      if (err) return logger.error({ err }, "discovery report subscription failed");
      void (async () => {
        try {
          const report = DiscoveryReport.parse(msg.json());
          const record = () => execute({ type: CommandType.recordDiscovery, name: report.upstream, serverInfo: report.serverInfo, tools: report.tools });
          // Two replicas may report the same change at once: the loser re-decides on fresh state.
          const result = await record().catch((error: unknown) => {
            if (error instanceof ManifoldError && error.code === "version_conflict") return record();
            throw error;
          });
          if (result.changed) {
            logger.info({ upstream: report.upstream, version: report.serverInfo.version }, "upstream tools changed");
            await adopt(report.upstream);
          }
          msg.respond(JSON.stringify({ changed: result.changed }));
        } catch (error) {
          replyWithError(msg, error instanceof ManifoldError ? error : new ManifoldError("invalid_request", "unreadable discovery report"));
        }
      })();
    },
  });
}
