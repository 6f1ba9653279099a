import { JsonLimits, ManifoldError, RESULT_TOO_DEEP, jsonTextTooDeep } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import { extractFromHttp } from "@manifold/telemetry";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { notServed, type Gatekeeper } from "./auth/gatekeeper.js";
import { serveToolCall, type CallDeps } from "./callPipeline.js";
import type { InFlight } from "./inFlight.js";
import { toJsonRpcError } from "./jsonRpc.js";
import { callIdOf, cancelToolCall, relayProgress } from "./toolCalls.js";
import { upstreamHeadersOf } from "./callContext.js";

export interface McpServerOptions {
  virtualServer: string;
  environment: string;
  principal: Principal;
  gatekeeper: Gatekeeper;
  inFlight: InFlight;
  deps: CallDeps;
  version: string;
}

/**
 * Each SDK server otherwise builds its own Ajv instance (for elicitation, which Manifold never
 * sends): one shared instance keeps a session's memory and its initialize cost down.
 */
const sharedValidator = new AjvJsonSchemaValidator();

/**
 * The MCP server behind one session of a virtual server. tools/list is answered from the
 * catalog without leaving the process; tools/call is forwarded over the bus.
 */
export function createMcpServer({ virtualServer, environment, principal, gatekeeper, inFlight, deps, version }: McpServerOptions): Server {
  const server = new Server(
    { name: `manifold-${virtualServer}`, version },
    { capabilities: { tools: { listChanged: true } }, jsonSchemaValidator: sharedValidator },
  );

  const viewOrThrow = () => {
    const view = deps.catalog.view(virtualServer, environment);
    if (!view) throw toJsonRpcError(notServed(virtualServer, environment));
    const access = gatekeeper.accessNow(virtualServer, environment, principal);
    if (!access) throw toJsonRpcError(new ManifoldError("forbidden", `access to virtual server '${virtualServer}' was revoked`));
    return { view, denied: access.denied };
  };

  server.setRequestHandler(ListToolsRequestSchema, () => {
    const { view, denied } = viewOrThrow();
    return { tools: [...view.visible(denied).tools] };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { denied } = viewOrThrow();
    const sessionId = extra.sessionId ?? "none";
    const headers = extra.requestInfo?.headers ?? {};
    const cancel = () => cancelToolCall(deps.nc, callIdOf(sessionId, extra.requestId));
    extra.signal.addEventListener("abort", cancel, { once: true });
    const token = request.params._meta?.progressToken;
    const progress = token === undefined ? undefined : relayProgress(deps.nc, token, extra.sendNotification);
    try {
      const call = {
        virtualServer,
        environment,
        principal,
        sessionId,
        requestId: extra.requestId,
        denied,
        params: request.params,
        // Parsed and checked once, at the HTTP edge.
        upstreamHeaders: upstreamHeadersOf(extra.authInfo),
        parent: extractFromHttp(headers),
        ...(progress ? { progressSubject: progress.getSubject() } : {}),
      };
      const text = await inFlight.track(serveToolCall(deps, call));
      // Parsed (and re-encoded by the SDK) on this lane only: measured first, as it came over the bus.
      if (jsonTextTooDeep(text, JsonLimits.resultDepth)) {
        throw toJsonRpcError(new ManifoldError("upstream_error", `the result nests deeper than ${JsonLimits.resultDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth: JsonLimits.resultDepth }));
      }
      return JSON.parse(text) as CallToolResult;
    } finally {
      extra.signal.removeEventListener("abort", cancel);
      progress?.unsubscribe();
    }
  });
  return server;
}
