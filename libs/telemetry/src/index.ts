export { createLogger, REDACTED_PATHS } from "./logger.js";
export type { Logger, LoggerOptions } from "./logger.js";
export { injectTraceContext, extractTraceContext, extractFromHttp, traceHeaders } from "./tracing.js";
export { startTelemetry } from "./setup.js";
export type { Telemetry } from "./setup.js";
export { traced, markFailed, Attr, SpanKind } from "./spans.js";
export type { HeaderCarrier } from "./tracing.js";
export { onShutdown } from "./lifecycle.js";
