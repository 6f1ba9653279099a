import { BusHeader, ManifoldError, Subjects, connectorQueue, type ListReply } from "@manifold/contracts";
import { replyWithError, type Msg, type NatsConnection } from "@manifold/bus";
import type { Logger } from "@manifold/telemetry";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { CallToolResultSchema, ErrorCode as McpErrorCode, McpError, type Tool } from "@modelcontextprotocol/sdk/types.js";
import type { Subscription } from "@nats-io/transport-node";
import type { UpstreamSession } from "./upstreamSession.js";

export interface HandlerOptions {
  callTimeoutMs: number;
  connectTimeoutMs: number;
}

/**
 * Serves one upstream on the bus: `list` for discovery and `call` for tools/call, both in
 * the upstream's queue group so its replicas share the work.
 */
export function serveUpstream(nc: NatsConnection, session: UpstreamSession, logger: Logger, options: HandlerOptions): Subscription[] {
  const queue = connectorQueue(session.name);
  const target = `upstream '${session.name}'`;

  const budget = (msg: Msg) => {
    const requested = Number(msg.headers?.get(BusHeader.timeoutMs));
    return Number.isFinite(requested) && requested > 0 ? Math.min(requested, options.callTimeoutMs) : options.callTimeoutMs;
  };

  const fail = (msg: Msg, client: Client | undefined, error: unknown, timeoutMs: number) => {
    const mapped = mapUpstreamError(error, target, timeoutMs);
    if (client && mapped.code === "upstream_unavailable") session.invalidate(client, error);
    if (mapped.code !== "upstream_error") logger.warn({ code: mapped.code, err: error }, "upstream request failed");
    replyWithError(msg, mapped);
  };

  /** Subscribes `subject` in the queue group; `work` gets the connected client and the time budget. */
  const handle = (subject: string, work: (msg: Msg, client: Client, timeoutMs: number) => Promise<string>) =>
    nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err) return logger.error({ err, subject }, "subscription failed");
        const timeoutMs = budget(msg);
        let client: Client | undefined;
        void (async () => {
          try {
            client = await session.client(Math.min(timeoutMs, options.connectTimeoutMs));
            msg.respond(await work(msg, client, timeoutMs));
          } catch (error) {
            fail(msg, client, error, timeoutMs);
          }
        })();
      },
    });

  const call = handle(Subjects.upstreamCall(session.name), async (msg, client, timeoutMs) => {
    const params = msg.json<{ name: string; arguments?: Record<string, unknown> }>();
    const result = await client.request({ method: "tools/call", params }, CallToolResultSchema, { timeout: timeoutMs });
    return JSON.stringify(result);
  });

  const list = handle(Subjects.upstreamList(session.name), async (_msg, client, timeoutMs) => {
    const tools: Tool[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listTools(cursor ? { cursor } : {}, { timeout: timeoutMs });
      tools.push(...page.tools);
      cursor = page.nextCursor;
    } while (cursor);
    const reply: ListReply = { serverInfo: client.getServerVersion() ?? { name: session.name, version: "unknown" }, tools };
    return JSON.stringify(reply);
  });

  return [call, list];
}

/** Tells apart: the upstream answered with an error, it took too long, or it cannot be reached. */
export function mapUpstreamError(error: unknown, target: string, timeoutMs: number): ManifoldError {
  if (error instanceof ManifoldError) return error;
  if (error instanceof McpError) {
    if (error.code === McpErrorCode.RequestTimeout) {
      return new ManifoldError("upstream_timeout", `${target} did not answer within ${timeoutMs} ms`, { timeoutMs });
    }
    if (error.code === McpErrorCode.ConnectionClosed) {
      return new ManifoldError("upstream_unavailable", `${target} closed the connection`);
    }
    // The upstream's own JSON-RPC error: its message and code are the caller's to see.
    return new ManifoldError("upstream_error", `${target} returned an error: ${error.message}`, {
      upstreamCode: error.code,
      ...(error.data === undefined ? {} : { upstreamData: error.data }),
    });
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new ManifoldError("upstream_unavailable", `${target} could not be reached: ${reason}`);
}
