import type { Logger } from "pino";

/**
 * Runs `close` once on SIGINT/SIGTERM, then exits. A second signal, or a close that takes
 * longer than `graceMs`, forces the exit so an orchestrator never waits for ever.
 */
export function onShutdown(logger: Logger, close: () => Promise<void>, graceMs = 10_000): void {
  let closing = false;
  const handle = (signal: NodeJS.Signals) => {
    if (closing) process.exit(1);
    closing = true;
    logger.info({ signal }, "shutting down");
    setTimeout(() => {
      logger.error({ graceMs }, "shutdown took too long, exiting");
      process.exit(1);
    }, graceMs).unref();
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", handle);
  process.once("SIGTERM", handle);
}
