export { buildGateway } from "./app.js";
export type { Gateway, GatewayDeps } from "./app.js";
export { loadGatewayConfig } from "./config.js";
export type { GatewayConfig } from "./config.js";
