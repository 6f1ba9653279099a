export { CALL_PATH_NODE_FLAGS, spawnService, serviceEntry } from "./processes.js";
export type { ServiceProcess, ServiceName } from "./processes.js";
export { demoCatalog, DEMO_VIRTUAL_SERVER } from "./demo.js";
export { adminCall, adminTarget } from "./adminClient.js";
export type { AdminTarget } from "./adminClient.js";
