import type { NatsConnection } from "@manifold/bus";
import { ManifoldError } from "@manifold/contracts";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { HttpHeader } from "@manifold/contracts";
import { parseUpstreamHeaders } from "./upstreamHeaders.js";
import type { Principal } from "@manifold/domain";
import type { Gatekeeper } from "./auth/gatekeeper.js";
import type { ArgumentValidator } from "./argumentValidator.js";
import type { InFlight } from "./inFlight.js";
import { beginCall, type CallObserver } from "./callObserver.js";
import type { GatewayCatalog } from "./catalog.js";
import { callAttributes } from "./spanAttributes.js";
import { extractFromHttp, SpanKind, traced } from "@manifold/telemetry";
import { toJsonRpcError, unknownTool } from "./jsonRpc.js";
import { callIdOf, cancelToolCall, relayProgress, requestToolCall } from "./toolCalls.js";

export interface McpServerOptions {
  virtualServer: string;
  environment: string;
  principal: Principal;
  gatekeeper: Gatekeeper;
  validator: ArgumentValidator;
  inFlight: InFlight;
  observer: CallObserver;
  catalog: GatewayCatalog;
  nc: NatsConnection;
  version: string;
}

/**
 * The MCP server behind one session of a virtual server. tools/list is answered from the
 * catalog without leaving the process; tools/call is forwarded over the bus.
 */
export function createMcpServer({ virtualServer, environment, principal, gatekeeper, validator, inFlight, observer, catalog, nc, version }: McpServerOptions): Server {
  const server = new Server(
    { name: `manifold-${virtualServer}`, version },
    { capabilities: { tools: { listChanged: true } } },
  );

  const viewOrThrow = () => {
    const view = catalog.view(virtualServer, environment);
    if (!view) throw toJsonRpcError(new ManifoldError("unknown_virtual_server", `virtual server '${virtualServer}' is not served in environment '${environment}'`));
    const access = gatekeeper.accessNow(virtualServer, environment, principal);
    if (!access) throw toJsonRpcError(new ManifoldError("forbidden", `access to virtual server '${virtualServer}' was revoked`));
    return { view, denied: access.denied };
  };

  server.setRequestHandler(ListToolsRequestSchema, () => {
    const { view, denied } = viewOrThrow();
    return { tools: denied.size ? view.tools.filter((t) => !denied.has(t.name)) : view.tools };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const name = request.params.name;
    const { facts, fail } = beginCall(virtualServer, environment, principal, name);
    try {
      const { view, denied } = viewOrThrow();
      const route = denied.has(name) ? undefined : view.routes.get(name);
      if (!route) throw fail(unknownTool(virtualServer, name));
      facts.tool = route.tool;
      facts.upstream = route.upstream;
      facts.argumentsValue = request.params.arguments;
      try {
        validator.check(route.hash, route.inputSchema, name, request.params.arguments);
      } catch (error) {
        throw fail(error);
      }
      const sessionId = extra.sessionId ?? "none";
      const attributes = callAttributes({ id: sessionId, virtualServer, principal }, name, extra.requestId, route.upstream, route.tool);
      const parent = extractFromHttp(extra.requestInfo?.headers ?? {});
      return await traced(
        `tools/call ${name}`,
        SpanKind.SERVER,
        attributes,
        async (span) => {
          if (span.spanContext().traceFlags) facts.traceId = span.spanContext().traceId;
          const callId = callIdOf(sessionId, extra.requestId);
          const cancel = () => cancelToolCall(nc, callId);
          extra.signal.addEventListener("abort", cancel, { once: true });
          const token = request.params._meta?.progressToken;
          const progress = token === undefined ? undefined : relayProgress(nc, token, extra.sendNotification);
          try {
            // Already validated at the HTTP edge; read again here because only headers reach the handler.
            const passthrough = parseUpstreamHeaders(extra.requestInfo?.headers[HttpHeader.upstreamHeaders], catalog.projection);
            const options = { callId, upstreamHeaders: passthrough?.get(route.upstream), ...(progress ? { progressSubject: progress.getSubject() } : {}) };
            const { text, sentBytes } = await inFlight.track(requestToolCall(nc, route, request.params, options));
            facts.argumentBytes = sentBytes;
            facts.resultBytes = Buffer.byteLength(text);
            facts.resultText = text;
            return JSON.parse(text) as CallToolResult;
          } catch (error) {
            throw fail(error);
          } finally {
            extra.signal.removeEventListener("abort", cancel);
            progress?.unsubscribe();
          }
        },
        parent,
      );
    } finally {
      observer.record(facts);
    }
  });
  return server;
}
