export { exposedToolName, toolSuffix } from "./naming.js";
export { pinDefinition, definitionHash } from "./hashing.js";
export { decide, aggregateOf } from "./decide.js";
export type { Aggregate } from "./decide.js";
export { evolveUpstream, evolveVirtualServer } from "./evolve.js";
export { CatalogProjection } from "./projection.js";
export type { ProjectionListener } from "./projection.js";
export type { UpstreamState, VirtualServerState, CatalogView } from "./state.js";
