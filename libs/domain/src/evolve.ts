import { EventType, type RegistryEvent } from "@manifold/contracts";
import type { UpstreamState, VirtualServerState } from "./state.js";

/** Folds one event into an upstream's state; `undefined` means the upstream does not exist. */
export function evolveUpstream(
  state: UpstreamState | undefined,
  event: RegistryEvent,
  version: number,
): UpstreamState | undefined {
  switch (event.type) {
    case EventType.upstreamRegistered: {
      const { name, description, transport, options } = event.data;
      return { name, transport, options, version, tools: new Map(), ...(description ? { description } : {}) };
    }
    case EventType.upstreamToolsDiscovered:
      if (!state) return state;
      return {
        ...state,
        version,
        serverInfo: event.data.serverInfo,
        tools: new Map(event.data.tools.map((t) => [t.definition.name, t])),
      };
    case EventType.upstreamRemoved:
      return undefined;
    default:
      return state;
  }
}

export function evolveVirtualServer(
  state: VirtualServerState | undefined,
  event: RegistryEvent,
  version: number,
): VirtualServerState | undefined {
  switch (event.type) {
    case EventType.virtualServerCreated: {
      const { name, description, tools } = event.data;
      return { name, version, tools: new Map(tools.map((t) => [t.exposedName, t])), ...(description ? { description } : {}) };
    }
    case EventType.virtualServerToolsSelected: {
      if (!state) return state;
      const tools = new Map(state.tools);
      for (const t of event.data.tools) tools.set(t.exposedName, t);
      return { ...state, version, tools };
    }
    case EventType.virtualServerToolsDeselected: {
      if (!state) return state;
      const tools = new Map(state.tools);
      for (const name of event.data.exposedNames) tools.delete(name);
      return { ...state, version, tools };
    }
    case EventType.virtualServerDeleted:
      return undefined;
    default:
      return state;
  }
}
