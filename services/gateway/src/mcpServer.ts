import { JsonLimits, ManifoldError, RESULT_TOO_DEEP, jsonTextTooDeep } from "@manifold/contracts";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { notServed } from "./auth/gatekeeper.js";
import type { VirtualServerView } from "./catalog.js";
import { resumeRound, serveToolCall, type CallDeps } from "./callPipeline.js";
import { MAX_ROUNDS, allowedInteractions, answerOnStream, callerDigest } from "./interactions.js";
import { z } from "zod";
import { toJsonRpcError } from "./jsonRpc.js";
import { callIdOf, type McpCall } from "./mcpCall.js";
import { relayProgress } from "./toolCalls.js";
import { callOf } from "./callContext.js";
import { serveLegacyItems } from "./itemHandlers.js";
import type { ResourceUpdates } from "./resourceUpdates.js";

/**
 * Each SDK server otherwise builds its own Ajv instance (for elicitation, which Manifold never
 * sends): one shared instance keeps a session's memory and its initialize cost down.
 */
const sharedValidator = new AjvJsonSchemaValidator();
/** An agent's answer to a relayed request goes to the upstream as it is: the upstream checks its shape. */
const ANY_RESULT = z.looseObject({});

/** The view of the call's virtual server, or the error the agent gets when it is no longer served. */
export function viewOf(deps: CallDeps, call: McpCall): VirtualServerView {
  const view = deps.catalog.view(call.virtualServer, call.environment);
  if (!view) throw toJsonRpcError(notServed(call.virtualServer, call.environment));
  return view;
}

/** A tools/call result as it came over the bus, parsed for an SDK lane (measured first: it is hostile). */
export function parsedResult(text: string): CallToolResult {
  if (jsonTextTooDeep(text, JsonLimits.resultDepth)) {
    throw toJsonRpcError(new ManifoldError("upstream_error", `the result nests deeper than ${JsonLimits.resultDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth: JsonLimits.resultDepth }));
  }
  return JSON.parse(text) as CallToolResult;
}

/**
 * The 1.x SDK server behind one 2025-era session of a virtual server. Each request's call object
 * (principal, access as admitted for this request, pass-through headers, trace) comes from the
 * edge; cancellation and in-flight tracking are the seam's. tools/list is answered from the
 * catalog; tools/call is forwarded over the bus; prompts, resources and completions are served by
 * `serveLegacyItems` when the virtual server exposes any.
 */
export function createMcpServer(call: McpCall, deps: CallDeps, version: string, updates: ResourceUpdates): Server {
  // What the virtual server exposes when the session opens: a session that outlives a new
  // selection of prompts or resources learns of them when it reconnects.
  const items = deps.catalog.view(call.virtualServer, call.environment)?.items.capabilities ?? {};
  const server = new Server(
    { name: `manifold-${call.virtualServer}`, version },
    { capabilities: { tools: { listChanged: true }, ...items }, jsonSchemaValidator: sharedValidator },
  );
  serveLegacyItems(server, deps, items, updates);

  server.setRequestHandler(ListToolsRequestSchema, (_request, extra) => {
    const { call } = callOf(extra.authInfo);
    return { tools: [...viewOf(deps, call).visible(call.access.denied).tools] };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { call } = callOf(extra.authInfo);
    viewOf(deps, call);
    const token = request.params._meta?.progressToken;
    const progress = token === undefined ? undefined : relayProgress(deps.nc, token, extra.sendNotification);
    const capabilities = allowedInteractions(deps.catalog, call, server.getClientCapabilities() as Record<string, unknown> | undefined);
    const caller = callerDigest(call.principal);
    try {
      let outcome = await serveToolCall(deps, {
        call,
        callId: callIdOf(call, extra.requestId),
        requestId: extra.requestId,
        params: request.params,
        ...(progress ? { progressSubject: progress.getSubject() } : {}),
        interaction: capabilities ? { capabilities, caller } : undefined,
      });
      // The upstream asks the agent: each request goes out on this request's stream, the answers back to the held call.
      for (let round = 1; typeof outcome !== "string"; round++) {
        if (round > MAX_ROUNDS) throw toJsonRpcError(new ManifoldError("upstream_error", `the upstream asked for input more than ${MAX_ROUNDS} times`));
        const { input, route } = outcome;
        const answers = await answerOnStream(input, capabilities, (asked) =>
          extra.sendRequest(asked as Parameters<typeof extra.sendRequest>[0], ANY_RESULT, { timeout: route.timeoutMs }),
        );
        outcome = await resumeRound(deps, call, request.params.name, input.resume, answers, caller);
      }
      return parsedResult(outcome);
    } finally {
      progress?.unsubscribe();
    }
  });
  return server;
}
