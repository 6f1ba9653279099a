// Given/When/Then fixtures shared by the decider specs: events in, a command, events (or an error) out.
import { EventType, ManifoldError, type NewEvent, type RegistryCommand, type RegistryEvent } from "@manifold/contracts";
import { decide } from "./decide.js";
import { definitionHash, pinDefinition } from "./hashing.js";
import { exposedToolName } from "./naming.js";
import { CatalogProjection } from "./projection.js";

export const meta = { commandId: "c", at: "2026-01-01T00:00:00.000Z" };
export const SUFFIX = { policy: "suffix" as const, prefixes: {} };
export const given = (...events: NewEvent[]) => {
  const projection = new CatalogProjection();
  events.forEach((e, i) => projection.apply({ ...e, meta } as RegistryEvent, i + 1));
  return projection;
};
export const when = (catalog: CatalogProjection, command: RegistryCommand) => () => decide(command, catalog);
export const failure = (run: () => unknown): ManifoldError => {
  try {
    run();
  } catch (error) {
    if (error instanceof ManifoldError) return error;
    throw error;
  }
  throw new Error("expected the command to be rejected");
};

export const http = { type: "streamable-http" as const, url: "http://a.example/mcp", headers: {}, secretHeaders: {} };
export const echo = { name: "echo", description: "Echoes", inputSchema: { type: "object" as const } };
export const add = { name: "add", inputSchema: { type: "object" as const, properties: { a: { type: "number" } } } };
export const pinned = (tool: typeof echo | typeof add) => ({ hash: definitionHash(pinDefinition(tool)), definition: pinDefinition(tool) });
export const serverInfo = { name: "srv", version: "1.0.0" };

/** A consumer, as grants that name it need. */
export const consumer = (name: string): NewEvent => ({ type: EventType.consumerCreated, version: 1, data: { name, groups: [] } });
export const registered = (name: string): NewEvent => ({ type: EventType.upstreamRegistered, version: 1, data: { name, transport: http, options: {} } });
export const discovered = (name: string, ...tools: (typeof echo | typeof add)[]): NewEvent => ({
  type: EventType.upstreamToolsDiscovered,
  version: 1,
  data: { name, serverInfo, tools: tools.map(pinned), changes: [] },
});
export const selection = (upstream: string, tool: typeof echo | typeof add) => ({
  exposedName: exposedToolName(upstream, tool.name),
  upstream,
  tool: tool.name,
  ...pinned(tool),
});
export const vsCreated = (name: string, ...tools: ReturnType<typeof selection>[]): NewEvent => ({
  type: EventType.virtualServerCreated,
  version: 1,
  data: { name, tools, driftPolicy: "pinned", naming: SUFFIX },
});
