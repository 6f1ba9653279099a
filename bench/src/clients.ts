// The bench's load clients, public so the tests can prove each speaks its era to a real SDK server.
export { RawMcpSession } from "./rawMcp.js";
export { mcpNameHeader, MODERN_VERSION, RawModernClient } from "./rawModern.js";
