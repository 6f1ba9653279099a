import { trace } from "@opentelemetry/api";
import { pino, type DestinationStream, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/**
 * Paths that may hold secrets anywhere in a log object. Credentials must never reach a
 * log line in clear text, even when a caller logs a whole request or registration.
 */
export const REDACTED_PATHS = [
  "authorization",
  "*.authorization",
  "*.Authorization",
  "headers",
  "*.headers",
  "*.*.headers",
  "env",
  "*.env",
  "*.*.env",
  "token",
  "*.token",
  "password",
  "*.password",
  "secret",
  "*.secret",
];

export interface LoggerOptions {
  component: string;
  level?: LevelWithSilent;
  destination?: DestinationStream;
}

export function createLogger({ component, level = "info", destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { component },
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      // Every line written inside a traced call carries its ids, so logs join traces.
      mixin() {
        const span = trace.getActiveSpan();
        if (!span) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
    },
    destination,
  );
}
