export { buildConnector } from "./app.js";
export type { Connector, ConnectorDeps } from "./app.js";
export { loadConnectorConfig } from "./config.js";
export type { ConnectorConfig } from "./config.js";
export { processSecrets } from "@manifold/contracts";
export type { SecretSource } from "@manifold/contracts";
export { MAX_LIST_PAGES } from "./upstreamListing.js";
export { endpointBounded } from "./transports.js";
