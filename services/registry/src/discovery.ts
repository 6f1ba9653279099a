import { BusHeader, ListReply, ManifoldError, Subjects } from "@manifold/contracts";
import { registrationHash, type CatalogProjection } from "@manifold/domain";
import { busRequest, type NatsConnection } from "@manifold/bus";
import type { Logger } from "@manifold/telemetry";
import type { CommandResult } from "./commandHandler.js";
import type { ToolListRecorder } from "./driftReview.js";

export type DiscoveryOutcome =
  | ({ status: "ok"; tools: number } & CommandResult)
  | { status: "failed"; error: { code: string; message: string } };

/**
 * Asks a connector for the upstream's live tool list and records it. Connectors pick up a
 * new or changed registration from the stream a moment later, so "nobody is serving it yet"
 * and "still serving the previous registration" are retried until the deadline: the list
 * recorded is always that of the registration as it is now.
 */
export function createDiscovery(nc: NatsConnection, projection: CatalogProjection, recordToolList: ToolListRecorder, logger: Logger, timeoutMs: number) {
  return async function discover(upstream: string): Promise<DiscoveryOutcome> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      const registered = projection.upstream(upstream);
      try {
        // Removed meanwhile: no list to record (and none to bind to a registration).
        if (!registered) throw new ManifoldError("not_found", `upstream '${upstream}' does not exist`);
        const registration = registrationHash(registered);
        const reply = await busRequest(nc, Subjects.upstreamList(upstream), "", {
          timeoutMs: Math.max(remaining, 1),
          target: `upstream '${upstream}'`,
          headers: { [BusHeader.registration]: registration },
        });
        const read = ListReply.safeParse(reply.json());
        // A connector's word, checked like any other (a connector of an earlier release may send more than 1,000 tools).
        if (!read.success) {
          const issue = read.error.issues[0];
          throw new ManifoldError("upstream_error", `the lists of upstream '${upstream}' cannot be recorded: ${issue ? `/${issue.path.join("/")} ${issue.message}` : "unreadable"}`);
        }
        const listed = read.data;
        const result = await recordToolList(upstream, listed, registration);
        logger.info({ upstream, tools: listed.tools.length, changed: result.changed }, "discovered upstream tools");
        return { status: "ok", tools: listed.tools.length, ...result };
      } catch (error) {
        const reason = error instanceof ManifoldError ? error.data?.reason : undefined;
        const retry = (reason === "no_connector" || reason === "reconfiguring") && Date.now() + 100 < deadline;
        if (retry) {
          await new Promise((r) => setTimeout(r, Math.min(50 * 2 ** attempt, 500)));
          continue;
        }
        const failure = error instanceof ManifoldError ? error : new ManifoldError("internal_error", "discovery failed", undefined, { cause: error });
        logger.warn({ upstream, code: failure.code, err: error }, "discovery failed");
        return { status: "failed", error: { code: failure.code, message: failure.message } };
      }
    }
  };
}

export type Discovery = ReturnType<typeof createDiscovery>;
