import { configOrExit } from "@manifold/contracts";
import { busOptionsOf, connectBus } from "@manifold/bus";
import { createLogger, onShutdown, startTelemetry } from "@manifold/telemetry";
import { buildRegistry } from "./app.js";
import { loadRegistryConfig } from "./config.js";

const telemetry = startTelemetry("registry", process.env);
const config = configOrExit("registry", () => loadRegistryConfig(process.env));
const logger = createLogger({ component: "registry", level: config.LOG_LEVEL });
const nc = await connectBus({ ...busOptionsOf(config), role: "registry", name: "registry", logger });
const registry = await buildRegistry({ config, logger, nc });
await registry.follower.caughtUp;
await registry.metricsApp.listen({ host: config.REGISTRY_METRICS_HOST ?? config.REGISTRY_HOST, port: config.REGISTRY_METRICS_PORT });
await registry.app.listen({ host: config.REGISTRY_HOST, port: config.REGISTRY_PORT });
onShutdown(logger, async () => {
  await registry.close();
  await nc.drain();
  await telemetry.shutdown();
});
