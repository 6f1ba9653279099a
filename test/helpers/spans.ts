import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

/** Spans of this process's services (an in-process stack), kept in memory once `register`ed. */
export interface RecordedSpans extends AsyncDisposable {
  readonly exporter: InMemorySpanExporter;
  register(): void;
  /** The names of finished spans whose status, attributes or events hold any of `values`, and how many spans were searched. */
  holding(values: readonly string[]): { names: string[]; searched: number };
}

export function recordSpans(): RecordedSpans {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return {
    exporter,
    register: () => provider.register(),
    holding: (values) => {
      const finished = exporter.getFinishedSpans();
      const names = finished.filter((s) => values.some((value) => JSON.stringify({ status: s.status, attributes: s.attributes, events: s.events }).includes(value))).map((s) => s.name);
      return { names, searched: finished.length };
    },
    // Read the spans first: the exporter's shutdown clears them.
    [Symbol.asyncDispose]: () => provider.shutdown(),
  };
}
