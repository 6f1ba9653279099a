import { ManifoldError } from "@manifold/contracts";
import type { NatsConnection } from "@manifold/bus";
import type { Principal } from "@manifold/domain";
import { SpanKind, traced, type Context } from "@manifold/telemetry";
import type { ArgumentValidator } from "./argumentValidator.js";
import { beginCall, type CallObserver } from "./callObserver.js";
import { isDenied, type GatewayCatalog } from "./catalog.js";
import { unknownTool } from "./jsonRpc.js";
import { callAttributes } from "./spanAttributes.js";
import { callIdOf, requestToolCall } from "./toolCalls.js";

/** What serving a tool call needs, built once per gateway and shared by both lanes. */
export interface CallDeps {
  catalog: GatewayCatalog;
  nc: NatsConnection;
  validator: ArgumentValidator;
  observer: CallObserver;
}

export interface ToolCall {
  virtualServer: string;
  environment: string;
  principal: Principal;
  sessionId: string;
  requestId: string | number;
  /** Tool identities this caller may neither see nor call (`Access.denied`). */
  denied: ReadonlySet<string>;
  /** As received: the shape is checked here. */
  params: { name?: unknown; arguments?: unknown };
  /** The agent's pass-through headers, by upstream (parsed and checked at the HTTP edge). */
  upstreamHeaders: ReadonlyMap<string, Record<string, string>> | undefined;
  /** The agent's trace context. */
  parent: Context;
  progressSubject?: string;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * One tools/call, whichever lane received it: route by exposed name (a denied tool is as
 * invisible as an unselected one), validate the arguments against the pin, forward over the
 * bus inside the call's server span, and record it once, after the caller has answered. Resolves with the connector's result
 * text; rejects with a JSON-RPC error.
 */
export async function serveToolCall(deps: CallDeps, call: ToolCall): Promise<string> {
  const { name, arguments: args } = call.params;
  const { facts, fail } = beginCall(call.virtualServer, call.environment, call.principal, typeof name === "string" ? name : "(none)");
  try {
    if (typeof name !== "string" || (args !== undefined && !isRecord(args))) {
      throw new ManifoldError("invalid_arguments", "invalid params: tools/call needs a string 'name' and an object 'arguments'");
    }
    // Denials are by tool identity: an alias or deprecated alias of a denied tool is denied too.
    const route = deps.catalog.view(call.virtualServer, call.environment)?.routes.get(name);
    if (!route || isDenied(route, call.denied)) throw unknownTool(call.virtualServer, name);
    facts.tool = route.tool;
    facts.upstream = route.upstream;
    facts.argumentsValue = args;
    deps.validator.check(route.hash, route.inputSchema, name, args);
    const attributes = callAttributes({ id: call.sessionId, virtualServer: call.virtualServer, principal: call.principal }, name, call.requestId, route.upstream, route.tool);
    return await traced(
      `tools/call ${name}`,
      SpanKind.SERVER,
      attributes,
      async (span) => {
        const context = span.spanContext();
        if (context.traceFlags) facts.traceId = context.traceId;
        const { text, sentBytes, receivedBytes } = await requestToolCall(deps.nc, route, call.params as { name: string }, {
          callId: callIdOf(call.sessionId, call.requestId),
          upstreamHeaders: call.upstreamHeaders?.get(route.upstream),
          ...(call.progressSubject ? { progressSubject: call.progressSubject } : {}),
        }).catch((error: unknown) => {
          throw fail(error);
        });
        facts.argumentBytes = sentBytes;
        facts.resultBytes = receivedBytes;
        facts.resultText = text;
        return text;
      },
      call.parent,
    );
  } catch (error) {
    throw facts.errorCode ? error : fail(error);
  } finally {
    // After the answer is written: metrics and the audit record never delay a call.
    setImmediate(() => deps.observer.record(facts));
  }
}
