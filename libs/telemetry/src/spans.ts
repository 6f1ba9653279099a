import { context, INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";

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
  return tracer.startActiveSpan(name, { kind, attributes: typeof attributes === "function" ? attributes() : attributes }, parent ?? context.active(), async (span) => {
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
