export { createLogger, REDACTED_PATHS } from "./logger.js";
export type { Logger, LoggerOptions } from "./logger.js";
export { injectTraceContext, extractTraceContext } from "./tracing.js";
export type { HeaderCarrier } from "./tracing.js";
export { onShutdown } from "./lifecycle.js";
