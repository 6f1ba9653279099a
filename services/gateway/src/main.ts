import { configOrExit } from "@manifold/contracts";
import { busOptionsOf, connectBus } from "@manifold/bus";
import { createLogger, onShutdown, startTelemetry } from "@manifold/telemetry";
import { buildGateway } from "./app.js";
import { loadGatewayConfig } from "./config.js";

const telemetry = startTelemetry("gateway", process.env);
const config = configOrExit("gateway", () => loadGatewayConfig(process.env));
const logger = createLogger({ component: "gateway", level: config.LOG_LEVEL });
const nc = await connectBus({ ...busOptionsOf(config), role: "gateway", name: "gateway", logger });
const gateway = await buildGateway({ config, logger, nc, env: process.env });
await gateway.follower.caughtUp;
// The metrics listener first: a port it cannot take stops the gateway before it serves anyone.
await gateway.metricsApp.listen({ host: config.GATEWAY_METRICS_HOST ?? config.GATEWAY_HOST, port: config.GATEWAY_METRICS_PORT });
await gateway.app.listen({ host: config.GATEWAY_HOST, port: config.GATEWAY_PORT });
/** After the calls have drained: ending sessions and streams, closing the listeners, leaving the bus. */
const AFTER_DRAIN_MS = 5_000;
// The forced exit comes after the drain it would otherwise cut short (both were 10 s by default, and
// the exit fired first: calls in flight were dropped and unflushed audit records lost).
onShutdown(
  logger,
  async () => {
    // Stop accepting, let in-flight calls finish, then leave the bus.
    await gateway.close();
    await nc.drain();
    await telemetry.shutdown();
  },
  config.GATEWAY_DRAIN_MS + AFTER_DRAIN_MS,
);
