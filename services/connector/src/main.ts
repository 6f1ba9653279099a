import { busOptionsOf, connectBus } from "@manifold/bus";
import { createLogger, onShutdown, startTelemetry } from "@manifold/telemetry";
import { buildConnector } from "./app.js";
import { loadConnectorConfig } from "./config.js";
import { configOrExit, processSecrets } from "@manifold/contracts";

const telemetry = startTelemetry("connector", process.env);
const config = configOrExit("connector", () => loadConnectorConfig(process.env));
const logger = createLogger({ component: "connector", level: config.LOG_LEVEL });
const nc = await connectBus({ ...busOptionsOf(config), role: "connector", name: "connector", logger });
const connector = await buildConnector({ config, logger, nc, secrets: processSecrets(process.env) });
await connector.follower.caughtUp;
await connector.app.listen({ host: config.CONNECTOR_HOST, port: config.CONNECTOR_PORT });
onShutdown(logger, async () => {
  await connector.close();
  await nc.drain();
  await telemetry.shutdown();
});
