export { buildRegistry } from "./app.js";
export type { Registry, RegistryDeps } from "./app.js";
export { adminTokens, loadRegistryConfig } from "./config.js";
export type { RegistryConfig } from "./config.js";
export { createCommandHandler } from "./commandHandler.js";
export { IdempotencyIndex } from "./idempotency.js";
