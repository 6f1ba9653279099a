import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { W3CTraceContextPropagator } from "@opentelemetry/core";

/**
 * Longest span attribute value exported unless `OTEL_(SPAN_)ATTRIBUTE_VALUE_LENGTH_LIMIT` says
 * otherwise: attributes may carry a caller's or an upstream's text, and every span waits in the
 * export queue and then in the collector's store.
 */
export const SPAN_ATTRIBUTE_VALUE_LIMIT = 4_096;

export interface Telemetry {
  readonly tracing: boolean;
  shutdown(): Promise<void>;
}

/**
 * Turns tracing on when the standard OpenTelemetry variables ask for it
 * (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
 * `OTEL_TRACES_EXPORTER=otlp`; OTLP over HTTP). Otherwise the API stays a no-op: no exporter,
 * no connection attempts, no error noise when no collector runs. Call it first in `main`.
 */
export function startTelemetry(service: string, env: Readonly<Record<string, string | undefined>>): Telemetry {
  const wanted =
    env.OTEL_SDK_DISABLED !== "true" &&
    (env.OTEL_TRACES_EXPORTER === "otlp" || Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT) || Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT));
  if (!wanted) return { tracing: false, shutdown: async () => undefined };
  const provider = new NodeTracerProvider({
    // OpenTelemetry's own default keeps attribute values of any length; one set by the operator wins.
    ...(env.OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT || env.OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT ? {} : { spanLimits: { attributeValueLengthLimit: SPAN_ATTRIBUTE_VALUE_LIMIT } }),
    resource: resourceFromAttributes({ "service.name": env.OTEL_SERVICE_NAME ?? `manifold-${service}`, "service.namespace": "manifold" }),
    // The exporter reads the rest of the OTEL_EXPORTER_OTLP_* variables itself.
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // Registers the async context manager, and the W3C trace-context propagator alone: the default
  // adds W3C baggage, and an agent's `baggage` header then went on to upstreams (tracing.e2e).
  provider.register({ propagator: new W3CTraceContextPropagator() });
  return { tracing: true, shutdown: () => provider.shutdown() };
}
