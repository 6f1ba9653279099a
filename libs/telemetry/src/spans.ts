import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span } from "@opentelemetry/api";

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

/**
 * Runs `work` inside a new active span (a child of `parent`, or of the active context),
 * records a failure's stable code as `error.type` (a JSON-RPC error's `data.code`, else its
 * `code`, else its name), and always ends the span. With
 * tracing off this is a no-op span and costs almost nothing.
 */
export function traced<T>(name: string, kind: SpanKind, attributes: Attributes, work: (span: Span) => Promise<T>, parent?: Context): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, parent ?? context.active(), async (span) => {
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
