import {
  CommandType,
  DEFAULT_ENVIRONMENT,
  EventType,
  InteractionSettings,
  ManifoldError,
  RegistryLimits,
  type NewEvent,
  type RegistryCommand,
  type SelectedTool,
  type Naming,
  type ToolRef,
} from "@manifold/contracts";
import { isDeepStrictEqual } from "node:util";
import { exposedNameFor } from "./naming.js";
import { decideItemDrift, deselectItems, itemFields, resolveItems } from "./decideItems.js";
import { decideDiscovery } from "./decideDiscovery.js";
import { newEvent } from "./newEvent.js";
import { mustBeAsReviewed, pendingDrift } from "./pendingDrift.js";
import { pinsIn } from "./environments.js";
import { planPromotion, promotionDigest } from "./promotion.js";
import { decideAccess, isAccessCommand } from "./decideAccess.js";
import type { CatalogView, VirtualServerState } from "./state.js";
import type { Aggregate } from "./aggregates.js";
import { toolKey } from "./toolIdentity.js";
import { mustHaveRoom } from "./limits.js";
import { adoptCompatible } from "./adoption.js";

/** The aggregate a command writes to; its version is what the append expects. */
export function aggregateOf(command: RegistryCommand): Aggregate {
  switch (command.type) {
    case CommandType.registerUpstream:
    case CommandType.updateUpstream:
    case CommandType.recordDiscovery:
    case CommandType.removeUpstream:
      return { kind: "upstream", name: command.name };
    case CommandType.createConsumer:
    case CommandType.updateConsumer:
    case CommandType.issueKey:
    case CommandType.revokeKey:
    case CommandType.revokeConnection:
    case CommandType.deleteConsumer:
      return { kind: "consumer", name: command.name };
    case CommandType.registerIdentityProvider:
    case CommandType.removeIdentityProvider:
      return { kind: "identity-provider", name: command.name };
    case CommandType.setEnvironment:
    case CommandType.deleteEnvironment:
      return { kind: "environment", name: command.name };
    default:
      return { kind: "virtual-server", name: command.name };
  }
}

/**
 * Decides what a command means for the catalog: the events to append, none when the
 * command changes nothing (so retries and re-seeding are no-ops), or a ManifoldError.
 */
export function decide(command: RegistryCommand, catalog: CatalogView): NewEvent[] {
  if (isAccessCommand(command)) return decideAccess(command, catalog);
  switch (command.type) {
    case CommandType.registerUpstream: {
      const { name, description, transport, options } = command;
      const existing = catalog.upstream(name);
      if (existing) {
        const same =
          isDeepStrictEqual(existing.transport, transport) &&
          isDeepStrictEqual(existing.options, options) &&
          existing.description === description;
        if (same) return [];
        throw new ManifoldError("already_exists", `upstream '${name}' already exists`, { version: existing.version });
      }
      mustHaveRoom("the registry", catalog.count("upstream"), 1, RegistryLimits.upstreams, "upstreams", "remove one before registering another");
      if (options.passthroughHeaders?.length && transport.type === "stdio") {
        throw new ManifoldError("invalid_request", `upstream '${name}' runs over stdio and cannot take per-request headers`);
      }
      return [newEvent(EventType.upstreamRegistered, { name, transport, options, ...(description ? { description } : {}) })];
    }
    case CommandType.recordDiscovery:
      return decideDiscovery(command, catalog);
    case CommandType.updateUpstream: {
      const { name, description, transport, options } = command;
      const existing = catalog.upstream(name);
      if (!existing) throw new ManifoldError("not_found", `upstream '${name}' does not exist`);
      const same = isDeepStrictEqual(existing.transport, transport) && isDeepStrictEqual(existing.options, options) && existing.description === description;
      if (same) return [];
      if (options.passthroughHeaders?.length && transport.type === "stdio") {
        throw new ManifoldError("invalid_request", `upstream '${name}' runs over stdio and cannot take per-request headers`);
      }
      return [newEvent(EventType.upstreamUpdated, { name, transport, options, ...(description ? { description } : {}) })];
    }
    case CommandType.updateVirtualServer: {
      const vs = requireVirtualServer(catalog, command.name);
      if (vs.description === command.description) return [];
      return [newEvent(EventType.virtualServerUpdated, { name: vs.name, ...(command.description ? { description: command.description } : {}) })];
    }
    case CommandType.removeUpstream: {
      if (!catalog.upstream(command.name)) throw new ManifoldError("not_found", `upstream '${command.name}' does not exist`);
      // Removed while a pin or a binding names it, it would be whichever upstream is registered under the name next.
      const { virtualServers, environments } = catalog.usersOf(command.name);
      if (virtualServers.length > 0 || environments.length > 0) {
        const by = [...(virtualServers.length ? [`virtual servers: ${virtualServers.join(", ")}`] : []), ...(environments.length ? [`environment bindings: ${environments.join(", ")}`] : [])];
        throw new ManifoldError("in_use", `upstream '${command.name}' is used by ${by.join("; ")}`, { virtualServers, environments });
      }
      return [newEvent(EventType.upstreamRemoved, { name: command.name })];
    }
    case CommandType.createVirtualServer: {
      const { name, description, driftPolicy, naming } = command;
      const existing = catalog.virtualServer(name);
      const tools = resolveSelection(command.tools, catalog, undefined, naming);
      const items = resolveItems({ prompts: command.prompts ?? [], resources: command.resources ?? [] }, catalog, undefined, naming, new Set(tools.map((t) => t.exposedName)));
      if (existing) {
        const same =
          existing.description === description &&
          items.prompts.every((p) => existing.prompts.get(p.exposedName)?.hash === p.hash) &&
          items.prompts.length === existing.prompts.size &&
          items.resources.length === existing.resources.size &&
          items.resourceTemplates.length === existing.resourceTemplates.size &&
          isDeepStrictEqual(existing.naming, naming) &&
          isDeepStrictEqual(existing.interactions, command.interactions) &&
          tools.length === existing.tools.size &&
          tools.every((t) => existing.tools.get(t.exposedName)?.hash === t.hash);
        if (same) return [];
        throw new ManifoldError("already_exists", `virtual server '${name}' already exists`, { version: existing.version });
      }
      mustHaveRoom("the registry", catalog.count("virtual-server"), 1, RegistryLimits.virtualServers, "virtual servers", "delete one before creating another");
      const { interactions } = command;
      return [newEvent(EventType.virtualServerCreated, { name, tools, driftPolicy, naming, ...itemFields(items), ...(description ? { description } : {}), ...(interactions ? { interactions } : {}) })];
    }
    case CommandType.selectTools: {
      const vs = requireVirtualServer(catalog, command.name);
      const tools = resolveSelection(command.tools, catalog, vs, vs.naming);
      mustHaveRoom(`virtual server '${vs.name}'`, vs.tools.size, tools.length, RegistryLimits.itemsPerVirtualServer, "tools", "deselect some before selecting more");
      return tools.length === 0 ? [] : [newEvent(EventType.virtualServerToolsSelected, { name: vs.name, tools })];
    }
    case CommandType.selectItems: {
      const vs = requireVirtualServer(catalog, command.name);
      const resolved = resolveItems(command, catalog, vs, vs.naming);
      for (const kind of ["prompts", "resources", "resourceTemplates"] as const) {
        mustHaveRoom(`virtual server '${vs.name}'`, vs[kind].size, resolved[kind].length, RegistryLimits.itemsPerVirtualServer, kind === "resourceTemplates" ? "resource templates" : kind, "deselect some before selecting more");
      }
      const items = itemFields(resolved);
      return Object.keys(items).length === 0 ? [] : [newEvent(EventType.virtualServerItemsSelected, { name: vs.name, ...items })];
    }
    case CommandType.deselectItems:
      return deselectItems(requireVirtualServer(catalog, command.name), command.prompts, command.resources);
    case CommandType.deselectTools: {
      const vs = requireVirtualServer(catalog, command.name);
      const missing = command.exposedNames.filter((n) => !vs.tools.has(n));
      if (missing.length > 0) {
        // The first few named: an answer listing each of 10,000 names sent is an amplifier, not a help.
        const named = missing.slice(0, 10).map((n) => `'${n}'`).join(", ");
        throw new ManifoldError("not_found", `virtual server '${vs.name}' has no tool named ${named}${missing.length > 10 ? ` (and ${missing.length - 10} more)` : ""}`, { missing: missing.length });
      }
      return [newEvent(EventType.virtualServerToolsDeselected, { name: vs.name, exposedNames: [...new Set(command.exposedNames)] })];
    }
    case CommandType.acceptDrift:
    case CommandType.rejectDrift: {
      const vs = requireVirtualServer(catalog, command.name);
      const environment = command.environment ?? DEFAULT_ENVIRONMENT;
      const where = environment === DEFAULT_ENVIRONMENT ? {} : { environment };
      if (environment !== DEFAULT_ENVIRONMENT) {
        if (!catalog.environment(environment)) throw new ManifoldError("not_found", `environment '${environment}' does not exist`);
        if (!pinsIn(vs, environment)) throw new ManifoldError("not_found", `virtual server '${vs.name}' has never been promoted to '${environment}'`);
      }
      const drift = pendingDrift(vs, catalog, environment, { exposedName: command.exposedName })[0];
      // A prompt shares its exposed name's namespace with the tools; a resource is named by its exposed URI.
      const itemDecision = drift ? undefined : decideItemDrift(vs, catalog, command.exposedName, command.type === CommandType.acceptDrift, environment, command);
      if (itemDecision) return itemDecision;
      if (!drift) {
        const inEnvironment = environment === DEFAULT_ENVIRONMENT ? "" : ` in environment '${environment}'`;
        throw new ManifoldError("not_found", `virtual server '${vs.name}' has no pending drift for tool '${command.exposedName}'${inEnvironment}`);
      }
      mustBeAsReviewed(command, drift, `tool '${drift.exposedName}'`);
      if (command.type === CommandType.rejectDrift) {
        return [newEvent(EventType.virtualServerDriftRejected, { name: vs.name, exposedName: drift.exposedName, hash: drift.currentHash, ...where })];
      }
      const current = catalog.upstream(drift.upstream)?.tools.get(drift.tool);
      if (!current) {
        throw new ManifoldError("in_use", `tool '${drift.tool}' is gone from upstream '${drift.upstream}': deselect '${drift.exposedName}' instead of accepting`);
      }
      return [
        newEvent(EventType.virtualServerToolRepinned, {
          name: vs.name,
          exposedName: drift.exposedName,
          hash: current.hash,
          definition: current.definition,
          ...where,
        }),
      ];
    }
    case CommandType.adoptCompatible: {
      const vs = catalog.virtualServer(command.name);
      return vs ? adoptCompatible(vs, catalog, command.upstream, command.maxEventBytes) : [];
    }
    case CommandType.renameTool: {
      const vs = requireVirtualServer(catalog, command.name);
      if (!vs.tools.has(command.exposedName)) {
        throw new ManifoldError("not_found", `virtual server '${vs.name}' has no tool named '${command.exposedName}'`);
      }
      if (command.newName === command.exposedName) return [];
      if (vs.tools.has(command.newName) || vs.prompts.has(command.newName) || vs.deprecatedAliases.has(command.newName)) {
        throw new ManifoldError("name_collision", `virtual server '${vs.name}' already uses the name '${command.newName}'`, { exposedName: command.newName });
      }
      const environment = environmentServingBoth(vs, command.exposedName, command.newName);
      if (environment !== undefined) {
        throw new ManifoldError("name_collision", `environment '${environment}' of virtual server '${vs.name}' still serves '${command.newName}' (promoted before it left the selection): promote into it first`, { exposedName: command.newName, environment });
      }
      return [
        newEvent(EventType.virtualServerToolRenamed, {
          name: vs.name,
          from: command.exposedName,
          to: command.newName,
          deprecatedAlias: command.keepDeprecatedAlias,
        }),
      ];
    }
    case CommandType.describeTool: {
      const vs = requireVirtualServer(catalog, command.name);
      const selected = vs.tools.get(command.exposedName);
      if (!selected) throw new ManifoldError("not_found", `virtual server '${vs.name}' has no tool named '${command.exposedName}'`);
      if (selected.descriptionOverride === command.description) return [];
      return [
        newEvent(EventType.virtualServerToolDescribed, {
          name: vs.name,
          exposedName: selected.exposedName,
          ...(command.description === undefined ? {} : { description: command.description }),
        }),
      ];
    }
    case CommandType.promote: {
      const vs = requireVirtualServer(catalog, command.name);
      const { source, differences } = planPromotion(vs, command.from, command.to, catalog, command.tools);
      const { items } = source;
      // The pins the promotion replaces in its target make room for its own.
      const promoted = source.tools.size + items.prompts.size + items.resources.size + items.resourceTemplates.size;
      mustHaveRoom(`virtual server '${vs.name}'`, environmentPins(vs, command.to), promoted, RegistryLimits.environmentPinsPerVirtualServer, "pins promoted into environments", "delete an environment or promote fewer tools");
      if (differences.length > 0 && !command.force) {
        const tools = differences.map((d) => `${d.kind ? `${d.kind} ` : ""}'${d.exposedName}' (${d.classification})`).join(", ");
        throw new ManifoldError(
          "definitions_differ",
          `environment '${command.to}' reports other definitions than the pins of '${command.from}' for ${tools}; promote with force to pin them anyway`,
          { differences },
        );
      }
      // Names what it copies (every node holds the source's pins), never the definitions themselves.
      const only = command.tools ? { tools: [...source.tools.keys()] } : {};
      return [newEvent(EventType.virtualServerPromoted, { name: vs.name, from: command.from, to: command.to, ...only, copied: promotionDigest(source), forced: differences.length > 0 })];
    }
    case CommandType.setEnvironment: {
      if (command.name === DEFAULT_ENVIRONMENT) throw new ManifoldError("invalid_request", "the default environment binds every upstream to itself and cannot be changed");
      for (const upstream of Object.values(command.bindings)) {
        if (!catalog.upstream(upstream)) throw new ManifoldError("not_found", `environment '${command.name}' binds to upstream '${upstream}', which does not exist`);
      }
      const existing = catalog.environment(command.name);
      if (existing && isDeepStrictEqual(Object.fromEntries(existing.bindings), command.bindings)) return [];
      if (!existing) mustHaveRoom("the registry", catalog.count("environment"), 1, RegistryLimits.environments, "environments", "delete one before creating another");
      return [newEvent(EventType.environmentBindingsSet, { name: command.name, bindings: command.bindings })];
    }
    case CommandType.deleteEnvironment: {
      if (!catalog.environment(command.name)) throw new ManifoldError("not_found", `environment '${command.name}' does not exist`);
      return [newEvent(EventType.environmentDeleted, { name: command.name })];
    }
    case CommandType.setDriftPolicy: {
      const vs = requireVirtualServer(catalog, command.name);
      return vs.driftPolicy === command.policy ? [] : [newEvent(EventType.virtualServerDriftPolicySet, { name: vs.name, policy: command.policy })];
    }
    case CommandType.setInteractions: {
      const vs = requireVirtualServer(catalog, command.name);
      const current = vs.interactions ?? InteractionSettings.parse({});
      return isDeepStrictEqual(current, command.interactions) ? [] : [newEvent(EventType.virtualServerInteractionsSet, { name: vs.name, interactions: command.interactions })];
    }
    case CommandType.deleteVirtualServer: {
      const vs = requireVirtualServer(catalog, command.name);
      return [newEvent(EventType.virtualServerDeleted, { name: vs.name })];
    }
  }
}

/**
 * The environment where the rename of `from` would land on a name it still serves for a tool or
 * prompt promoted before it left the selection: the environment's name would run the renamed tool,
 * unreviewed. (An environment that does not serve `from` keeps its pins as they are.)
 */
function environmentServingBoth(vs: VirtualServerState, from: string, to: string): string | undefined {
  for (const [environment, pins] of vs.environments) {
    if (pins.has(from) && (pins.has(to) || vs.environmentItems.get(environment)?.prompts.has(to))) return environment;
  }
  return undefined;
}

/** Every pin of a virtual server's environments but `except`'s: tools, prompts, resources and templates. */
function environmentPins(vs: VirtualServerState, except: string): number {
  let count = 0;
  for (const [environment, pins] of vs.environments) if (environment !== except) count += pins.size;
  for (const [environment, items] of vs.environmentItems) if (environment !== except) count += items.prompts.size + items.resources.size + items.resourceTemplates.size;
  return count;
}

function requireVirtualServer(catalog: CatalogView, name: string): VirtualServerState {
  const vs = catalog.virtualServer(name);
  if (!vs) throw new ManifoldError("not_found", `virtual server '${name}' does not exist`);
  return vs;
}

/**
 * Pins each referenced tool's current definition under its exposed name (its alias, or the
 * naming policy's). Tools already selected are skipped; two different tools mapping to one
 * exposed name are rejected, naming both.
 */
function resolveSelection(refs: ToolRef[], catalog: CatalogView, vs: VirtualServerState | undefined, naming: Naming): SelectedTool[] {
  const chosen = new Map<string, SelectedTool>();
  // Looked up, not scanned per reference (3,000 references over 3,000 selected tools held the registry 1.4 s).
  const selected = new Set(vs ? [...vs.tools.values()].map((t) => toolKey(t.upstream, t.tool)) : []);
  for (const { upstream, tool, alias, description } of refs) {
    const source = catalog.upstream(upstream);
    if (!source) throw new ManifoldError("not_found", `upstream '${upstream}' does not exist`);
    const discovered = source.tools.get(tool);
    if (!discovered) {
      throw new ManifoldError("tool_not_discovered", `upstream '${upstream}' has no discovered tool '${tool}'`, {
        upstream,
        tool,
      });
    }
    if (selected.has(toolKey(upstream, tool))) continue;
    const exposedName = alias ?? exposedNameFor(upstream, tool, naming);
    if (vs?.deprecatedAliases.has(exposedName)) {
      throw new ManifoldError("name_collision", `exposed name '${exposedName}' is still a deprecated alias in virtual server '${vs.name}'`, { exposedName });
    }
    const prompt = vs?.prompts.get(exposedName);
    if (prompt) throw new ManifoldError("name_collision", `exposed name '${exposedName}' of tool '${tool}' on upstream '${upstream}' collides with prompt '${prompt.prompt}' on upstream '${prompt.upstream}'`, { exposedName });
    const taken = vs?.tools.get(exposedName) ?? chosen.get(exposedName);
    if (taken) {
      if (taken.upstream === upstream && taken.tool === tool) continue;
      throw new ManifoldError(
        "name_collision",
        `exposed name '${exposedName}' of tool '${tool}' on upstream '${upstream}' collides with tool '${taken.tool}' on upstream '${taken.upstream}'`,
        { exposedName },
      );
    }
    chosen.set(exposedName, {
      exposedName,
      upstream,
      tool,
      hash: discovered.hash,
      definition: discovered.definition,
      ...(description === undefined ? {} : { descriptionOverride: description }),
    });
  }
  return [...chosen.values()];
}
