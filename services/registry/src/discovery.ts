import { ListReply, ManifoldError, Subjects } from "@manifold/contracts";
import { busRequest, type NatsConnection } from "@manifold/bus";
import type { Logger } from "@manifold/telemetry";
import type { CommandResult } from "./commandHandler.js";
import type { ToolListRecorder } from "./driftReview.js";

export type DiscoveryOutcome =
  | ({ status: "ok"; tools: number } & CommandResult)
  | { status: "failed"; error: { code: string; message: string } };

/**
 * Asks a connector for the upstream's live tool list and records it. A connector picks up
 * a newly registered upstream from the stream a moment later, so "nobody is serving it
 * yet" is retried until the deadline.
 */
export function createDiscovery(nc: NatsConnection, recordToolList: ToolListRecorder, logger: Logger, timeoutMs: number) {
  return async function discover(upstream: string): Promise<DiscoveryOutcome> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - Date.now();
      try {
        const reply = await busRequest(nc, Subjects.upstreamList(upstream), "", {
          timeoutMs: Math.max(remaining, 1),
          target: `upstream '${upstream}'`,
        });
        const listed = ListReply.parse(reply.json());
        const result = await recordToolList(upstream, listed);
        logger.info({ upstream, tools: listed.tools.length, changed: result.changed }, "discovered upstream tools");
        return { status: "ok", tools: listed.tools.length, ...result };
      } catch (error) {
        const noConnectorYet = error instanceof ManifoldError && error.data?.reason === "no_connector";
        const retry = noConnectorYet && Date.now() + 100 < deadline;
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
