import { context, createContextKey, INVALID_SPAN_CONTEXT, isSpanContextValid, ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type SpanContext } from "@opentelemetry/api";

export { SpanKind };
export type { Context };

/**
 * Span attribute names, following OpenTelemetry's MCP, JSON-RPC and messaging semantic
 * conventions where they exist, and `manifold.*` where they do not.
 */
export const Attr = {
  mcpMethod: "mcp.method.name",
  mcpSessionId: "mcp.session.id",
  toolName: "gen_ai.tool.name",
  jsonRpcRequestId: "jsonrpc.request.id",
  errorType: "error.type",
  messagingSystem: "messaging.system",
  messagingDestination: "messaging.destination.name",
  messagingOperation: "messaging.operation.type",
  virtualServer: "manifold.virtual_server",
  consumer: "manifold.consumer",
  upstream: "manifold.upstream",
  upstreamTool: "manifold.upstream.tool",
} as const;

const tracer = trace.getTracer("manifold");

/** What a fresh proxy delegates to: the API's no-op provider (its class is not exported). */
const NoopProvider = new ProxyTracerProvider().getDelegate().constructor;
const NOOP_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** No tracer provider is registered (neither `startTelemetry` nor a test has registered one). */
function tracingOff(): boolean {
  const provider = trace.getTracerProvider();
  return provider instanceof ProxyTracerProvider && provider.getDelegate() instanceof NoopProvider;
}

/** The agent's span context, on a root context whose first span links to it (`linkedRoot`). */
const AGENT_LINK = createContextKey("manifold.agent-link");

/**
 * An agent's trace context made a link, not a parent: a new trace starts here, sampled by this
 * process's own sampler, and its first span links to the agent's span (when it named a valid
 * one), so the two traces can still be joined. An agent then picks neither the trace its calls'
 * spans join nor whether they are sampled (`GATEWAY_AGENT_TRACE=link`).
 */
export function linkedRoot(agent: Context): Context {
  const span = trace.getSpanContext(agent);
  return span && isSpanContextValid(span) ? ROOT_CONTEXT.setValue(AGENT_LINK, span) : ROOT_CONTEXT;
}

/**
 * Runs `work` inside a new active span (a child of `parent`, or of the active context),
 * records a failure's stable code as `error.type` (a JSON-RPC error's `data.code`, else its
 * `code`, else its name), and always ends the span. With tracing off `work` runs at once with
 * a no-op span: the API's own no-op path still made a span and a context per call (three per
 * call on the hot path). `attributes` may be a function, so a hot path builds them only when traced.
 */
export function traced<T>(name: string, kind: SpanKind, attributes: Attributes | (() => Attributes), work: (span: Span) => Promise<T>, parent?: Context): Promise<T> {
  if (tracingOff()) {
    // A work function that throws before its first await still yields a rejected promise, as the span path does.
    try {
      return work(NOOP_SPAN);
    } catch (error) {
      return Promise.reject(error);
    }
  }
  const within = parent ?? context.active();
  // Only the trace's first span links to the agent's: its children carry the context on, not the link.
  const link = trace.getSpan(within) ? undefined : (within.getValue(AGENT_LINK) as SpanContext | undefined);
  const options = { kind, attributes: typeof attributes === "function" ? attributes() : attributes, ...(link ? { links: [{ context: link }] } : {}) };
  return tracer.startActiveSpan(name, options, within, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      const stable = (error as { data?: { code?: unknown } }).data?.code;
      const code = typeof stable === "string" ? stable : (error as { code?: unknown }).code;
      span.setAttribute(Attr.errorType, typeof code === "string" ? code : typeof code === "number" ? String(code) : (error as Error).name ?? "error");
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}
