import { DEFAULT_ENVIRONMENT, EventType, type EnvironmentPin, type EventOf, type ItemRepin, type Naming, type RegistryEvent, type ToolRepin, type SelectedPrompt, type SelectedResource, type SelectedResourceTemplate } from "@manifold/contracts";
import { isDeepStrictEqual } from "node:util";
import { withListChange } from "./listChanges.js";
import { exposeUri } from "./resourceUris.js";
import { pinsIn } from "./environments.js";
import { promotionDigest, promotionSource } from "./promotion.js";
import { resolveToolRefs } from "./toolIdentity.js";
import { resolvePromptRefs, resolveResourceRefs } from "./itemIdentity.js";
import type { CatalogView, ConsumerState, EnvironmentState, IdentityProviderState, UpstreamState, VirtualServerState } from "./state.js";

/** A grant's identities as its event recorded them (`decideAccess` checked each). */
const recorded = () => true;

type ItemMaps = Pick<VirtualServerState, "prompts" | "resources" | "resourceTemplates">;
const EMPTY_ITEMS: ItemMaps = { prompts: new Map(), resources: new Map(), resourceTemplates: new Map() };
/** Adds selected prompts, resources and templates (keyed by exposed name and exposed URI) to the maps. */
function withItems(state: ItemMaps, naming: Naming, selected: { prompts?: SelectedPrompt[] | undefined; resources?: SelectedResource[] | undefined; resourceTemplates?: SelectedResourceTemplate[] | undefined }): ItemMaps {
  const prompts = new Map(state.prompts);
  const resources = new Map(state.resources);
  const resourceTemplates = new Map(state.resourceTemplates);
  for (const p of selected.prompts ?? []) prompts.set(p.exposedName, p);
  for (const r of selected.resources ?? []) resources.set(exposeUri(r.upstream, r.uri, naming) ?? r.uri, r);
  for (const t of selected.resourceTemplates ?? []) resourceTemplates.set(exposeUri(t.upstream, t.uriTemplate, naming) ?? t.uriTemplate, t);
  return { prompts, resources, resourceTemplates };
}


/**
 * What a re-pin moves to: its own definition, or the one its upstream reports under its hash at this
 * point of the stream (`tools-repinned`). None when the upstream has reported another since the
 * adoption was decided: that pin stays, and the adoption that change set off moves it.
 */
function repinned<D>(repin: { hash: string; definition: D } | { hash: string; upstream: string }, reported: (upstream: UpstreamState) => { hash: string; definition: unknown } | undefined, catalog: CatalogView | undefined): D | undefined {
  if ("definition" in repin) return repin.definition;
  const upstream = catalog?.upstream(repin.upstream);
  const current = upstream && reported(upstream);
  return current?.hash === repin.hash ? (current.definition as D) : undefined;
}

/** What an item's upstream reports for it, by the upstream's own name or URI (template). */
const reportedItem = (upstream: UpstreamState, pinned: SelectedPrompt | SelectedResource | SelectedResourceTemplate) =>
  "prompt" in pinned ? upstream.prompts.get(pinned.prompt) : "uriTemplate" in pinned ? upstream.resourceTemplates.get(pinned.uriTemplate) : upstream.resources.get(pinned.uri);

/** Moves the pins of tools still selected in the environment, and forgets their rejections there: one copy of each map for the lot. */
function withToolsRepinned(state: VirtualServerState, version: number, environment = DEFAULT_ENVIRONMENT, repins: readonly ToolRepin[], catalog: CatalogView | undefined): VirtualServerState {
  const pins = pinsIn(state, environment);
  if (!pins) return { ...state, version };
  const moved = new Map(pins);
  const names: string[] = [];
  for (const repin of repins) {
    const pinned = pins.get(repin.exposedName);
    const definition = pinned && repinned(repin, (u) => u.tools.get(pinned.tool), catalog);
    if (!pinned || !definition) continue;
    moved.set(repin.exposedName, { ...pinned, hash: repin.hash, definition });
    names.push(repin.exposedName);
  }
  // Its version moves all the same: it is the ETag that admins' If-Match is compared with.
  if (names.length === 0) return { ...state, version };
  const rejected = withoutRejections(state.rejected, environment, names);
  return environment === DEFAULT_ENVIRONMENT
    ? { ...state, version, tools: moved, rejected }
    : { ...state, version, environments: new Map(state.environments).set(environment, moved), rejected };
}

/** The same for prompts, resources and templates (keyed by exposed name or URI). */
function withItemsRepinned(state: VirtualServerState, version: number, environment = DEFAULT_ENVIRONMENT, repins: readonly ItemRepin[], catalog: CatalogView | undefined): VirtualServerState {
  const pins = environment === DEFAULT_ENVIRONMENT ? state : state.environmentItems.get(environment);
  if (!pins) return { ...state, version };
  const maps = { prompt: new Map(pins.prompts), resource: new Map(pins.resources), "resource-template": new Map(pins.resourceTemplates) };
  const keys: string[] = [];
  for (const repin of repins) {
    const map: Map<string, SelectedPrompt | SelectedResource | SelectedResourceTemplate> = maps[repin.kind];
    const pinned = map.get(repin.key);
    const definition = pinned && repinned(repin, (u) => reportedItem(u, pinned), catalog);
    if (!pinned || !definition) continue;
    map.set(repin.key, { ...pinned, hash: repin.hash, definition } as typeof pinned);
    keys.push(repin.key);
  }
  if (keys.length === 0) return { ...state, version };
  const rejected = withoutRejections(state.rejected, environment, keys);
  const moved: ItemMaps = { prompts: maps.prompt, resources: maps.resource, resourceTemplates: maps["resource-template"] };
  return environment === DEFAULT_ENVIRONMENT
    ? { ...state, version, ...moved, rejected }
    : { ...state, version, environmentItems: new Map(state.environmentItems).set(environment, moved), rejected };
}

/**
 * The pins a promotion leaves in its target: those its event carries (as first recorded), or the
 * source environment's as the virtual server holds them at this point of the stream. The registry
 * decided on that very state (its append expects the stream's last sequence), so they are the
 * pins the event's digest names; when they are not (a log written some other way), nothing is
 * copied: the target keeps its pins rather than serve some that no promotion checked.
 */
function promotedPins(state: VirtualServerState, data: EventOf<typeof EventType.virtualServerPromoted>["data"]): { tools: Map<string, EnvironmentPin>; items: ItemMaps | undefined } | undefined {
  if ("pins" in data) return { tools: new Map(data.pins.map((p) => [p.exposedName, p])), items: data.items && withItems(EMPTY_ITEMS, state.naming, data.items) };
  const source = promotionSource(state, data.from, data.tools);
  if (!source || !isDeepStrictEqual(promotionDigest(source), data.copied)) return undefined;
  const { prompts, resources, resourceTemplates } = source.items;
  return { tools: new Map(source.tools), items: { prompts: new Map(prompts), resources: new Map(resources), resourceTemplates: new Map(resourceTemplates) } };
}

/** Folds one event into an upstream's state; `undefined` means the upstream does not exist. */
export function evolveUpstream(
  state: UpstreamState | undefined,
  event: RegistryEvent,
  version: number,
): UpstreamState | undefined {
  switch (event.type) {
    case EventType.upstreamRegistered: {
      const { name, description, transport, options } = event.data;
      return { name, transport, options, version, registeredAt: version, tools: new Map(), prompts: new Map(), resources: new Map(), resourceTemplates: new Map(), ...(description ? { description } : {}) };
    }
    case EventType.upstreamToolsDiscovered:
      if (!state) return state;
      return {
        ...state,
        version,
        serverInfo: event.data.serverInfo,
        tools: new Map(event.data.tools.map((t) => [t.definition.name, t])),
        prompts: new Map((event.data.prompts ?? []).map((p) => [p.definition.name, p])),
        resources: new Map((event.data.resources ?? []).map((r) => [r.definition.uri, r])),
        resourceTemplates: new Map((event.data.resourceTemplates ?? []).map((t) => [t.definition.uriTemplate, t])),
        // Its size as recorded (characters stand for bytes): replaying pays this once per recorded change.
        listChangedAt: withListChange(state.listChangedAt, Date.parse(event.meta.at), JSON.stringify(event.data).length),
      };
    case EventType.upstreamUpdated: {
      if (!state) return state;
      const { description, transport, options } = event.data;
      const { description: _old, ...rest } = state;
      return { ...rest, transport, options, version, registeredAt: version, ...(description ? { description } : {}) };
    }
    case EventType.upstreamRemoved:
      return undefined;
    default:
      return state;
  }
}

/** `catalog`: the rest of the catalog as folded up to this event, which a batch of re-pins names its definitions in. */
export function evolveVirtualServer(
  state: VirtualServerState | undefined,
  event: RegistryEvent,
  version: number,
  catalog?: CatalogView,
): VirtualServerState | undefined {
  switch (event.type) {
    case EventType.virtualServerCreated: {
      const { name, description, tools, driftPolicy, naming, interactions } = event.data;
      return {
        name,
        version,
        created: version,
        tools: new Map(tools.map((t) => [t.exposedName, t])),
        ...withItems(EMPTY_ITEMS, naming, event.data),
        grants: new Map(),
        driftPolicy,
        rejected: new Map(),
        naming,
        deprecatedAliases: new Map(),
        environments: new Map(),
        environmentItems: new Map(),
        ...(description ? { description } : {}),
        ...(interactions ? { interactions } : {}),
      };
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
      const deprecatedAliases = new Map([...state.deprecatedAliases].filter(([, current]) => tools.has(current)));
      return { ...state, version, tools, deprecatedAliases };
    }
    case EventType.virtualServerItemsSelected:
      return state && { ...state, version, ...withItems(state, state.naming, event.data) };
    case EventType.virtualServerItemsDeselected: {
      if (!state) return state;
      // A set, not `includes`: 1,000 keys over 10,000 items was 10 million comparisons on every node.
      const without = <V>(map: ReadonlyMap<string, V>, keys: string[] | undefined) => {
        const gone = new Set(keys);
        return new Map([...map].filter(([k]) => !gone.has(k)));
      };
      const { prompts, resources, resourceTemplates } = event.data;
      return {
        ...state,
        version,
        prompts: without(state.prompts, prompts),
        resources: without(state.resources, resources),
        resourceTemplates: without(state.resourceTemplates, resourceTemplates),
      };
    }
    case EventType.virtualServerItemRepinned: {
      const { name: _name, environment, ...repin } = event.data;
      return state && withItemsRepinned(state, version, environment, [repin], catalog);
    }
    case EventType.virtualServerItemsRepinned:
      return state && withItemsRepinned(state, version, event.data.environment, event.data.items, catalog);
    case EventType.virtualServerItemDriftRejected: {
      const { key, hash, environment = DEFAULT_ENVIRONMENT } = event.data;
      return state && { ...state, version, rejected: withRejection(state.rejected, environment, key, hash) };
    }
    case EventType.virtualServerUpdated: {
      if (!state) return state;
      const { description: _old, ...rest } = state;
      return { ...rest, version, ...(event.data.description ? { description: event.data.description } : {}) };
    }
    case EventType.virtualServerDeleted:
      return undefined;
    case EventType.virtualServerAccessGranted: {
      if (!state) return state;
      // Grants recorded before identities existed name exposed names: they mean the tools those names
      // had here and now. Identities were checked when decided and are kept as recorded, selected or not.
      const { grant } = event.data;
      const grants = new Map(state.grants);
      grants.set(grant.grantId, {
        ...grant,
        deniedTools: resolveToolRefs(state, grant.deniedTools, recorded).identities,
        deniedPrompts: resolvePromptRefs(state, grant.deniedPrompts ?? [], recorded).identities,
        deniedResources: resolveResourceRefs(state, grant.deniedResources ?? [], recorded).identities,
      });
      return { ...state, version, grants };
    }
    case EventType.virtualServerToolRepinned: {
      const { name: _name, environment, ...repin } = event.data;
      return state && withToolsRepinned(state, version, environment, [repin], catalog);
    }
    case EventType.virtualServerToolsRepinned:
      return state && withToolsRepinned(state, version, event.data.environment, event.data.tools, catalog);
    case EventType.virtualServerDriftRejected: {
      if (!state) return state;
      const { exposedName, hash, environment = DEFAULT_ENVIRONMENT } = event.data;
      return { ...state, version, rejected: withRejection(state.rejected, environment, exposedName, hash) };
    }
    case EventType.virtualServerToolRenamed: {
      const selected = state?.tools.get(event.data.from);
      if (!state || !selected) return state;
      const { from, to, deprecatedAlias } = event.data;
      const tools = new Map([...state.tools].map(([k, v]) => (k === from ? [to, { ...v, exposedName: to }] : [k, v])));
      const deprecatedAliases = new Map([...state.deprecatedAliases].map(([old, current]) => [old, current === from ? to : current]));
      if (deprecatedAlias) deprecatedAliases.set(from, to);
      // Only the environments that serve the name are copied: each copy is linear in its pins, and
      // every node folds the rename (1,000 environments of 1,000 pins: 128 ms, all of them copied).
      const environments = new Map(
        [...state.environments].map(([env, pins]) => [env, pins.has(from) ? new Map([...pins].map(([k, p]) => (k === from ? [to, { ...p, exposedName: to }] : [k, p]))) : pins]),
      );
      const rejected = new Map(
        [...state.rejected].map(([env, hashes]) => [env, hashes.has(from) ? new Map([...hashes].map(([k, h]) => [k === from ? to : k, h])) : hashes]),
      );
      return { ...state, version, tools, deprecatedAliases, rejected, environments };
    }
    case EventType.virtualServerToolDescribed: {
      const selected = state?.tools.get(event.data.exposedName);
      if (!state || !selected) return state;
      const { descriptionOverride: _old, ...rest } = selected;
      const tools = new Map(state.tools);
      tools.set(selected.exposedName, { ...rest, ...(event.data.description === undefined ? {} : { descriptionOverride: event.data.description }) });
      return { ...state, version, tools };
    }
    case EventType.virtualServerPromoted: {
      if (!state) return state;
      const promoted = promotedPins(state, event.data);
      if (!promoted) return { ...state, version };
      const { to } = event.data;
      const environments = new Map(state.environments).set(to, promoted.tools);
      // Promoted before promotion covered prompts and resources: the environment serves the selection's.
      const environmentItems = new Map(state.environmentItems);
      if (promoted.items) environmentItems.set(to, promoted.items);
      else environmentItems.delete(to);
      // New pins: what was rejected against the old ones no longer applies.
      const rejected = new Map(state.rejected);
      rejected.delete(to);
      return { ...state, version, environments, environmentItems, rejected };
    }
    case EventType.virtualServerDriftPolicySet:
      return state && { ...state, version, driftPolicy: event.data.policy };
    case EventType.virtualServerInteractionsSet:
      return state && { ...state, version, interactions: event.data.interactions };
    case EventType.virtualServerAuditConfigured:
      return state && { ...state, version, audit: event.data.audit };
    case EventType.virtualServerAccessRevoked: {
      if (!state) return state;
      const grants = new Map(state.grants);
      grants.delete(event.data.grantId);
      return { ...state, version, grants };
    }
    default:
      return state;
  }
}

export function evolveConsumer(state: ConsumerState | undefined, event: RegistryEvent, version: number): ConsumerState | undefined {
  switch (event.type) {
    case EventType.consumerCreated: {
      const { name, description, groups, identityProviders = [] } = event.data;
      return { name, groups, identityProviders, version, created: version, keys: new Map(), ...(description ? { description } : {}) };
    }
    case EventType.consumerUpdated: {
      if (!state) return state;
      const { description: _previous, ...rest } = state;
      const { description, groups, identityProviders = [] } = event.data;
      return { ...rest, groups, identityProviders, version, ...(description ? { description } : {}) };
    }
    case EventType.consumerKeyIssued: {
      if (!state) return state;
      const keys = new Map(state.keys);
      keys.set(event.data.key.keyId, event.data.key);
      return { ...state, version, keys };
    }
    case EventType.consumerKeyRevoked: {
      if (!state) return state;
      const keys = new Map(state.keys);
      keys.delete(event.data.keyId);
      return { ...state, version, keys };
    }
    case EventType.consumerDeleted:
      return undefined;
    // Changes nothing the registry keeps of the consumer, but is one of its events: its version (an
    // ETag, what If-Match is checked against) moves with it, or every conditional change was refused.
    case EventType.consumerConnectionRevoked:
      return state && { ...state, version };
    default:
      return state;
  }
}

export function evolveIdentityProvider(
  state: IdentityProviderState | undefined,
  event: RegistryEvent,
  version: number,
): IdentityProviderState | undefined {
  switch (event.type) {
    case EventType.identityProviderRegistered:
      return { ...event.data, version };
    case EventType.identityProviderRemoved:
      return undefined;
    default:
      return state;
  }
}

export function evolveEnvironment(state: EnvironmentState | undefined, event: RegistryEvent, version: number): EnvironmentState | undefined {
  switch (event.type) {
    case EventType.environmentBindingsSet:
      return { name: event.data.name, version, created: state?.created ?? version, bindings: new Map(Object.entries(event.data.bindings)) };
    case EventType.environmentDeleted:
      return undefined;
    default:
      return state;
  }
}

/**
 * A virtual server as an environment's deletion leaves it: without its promotion there (pins,
 * prompts and resources, rejected drift) and without the grants scoped to it. An environment
 * created again under the name is another one, which starts with nothing promoted and no grant,
 * as a consumer created again does (before, the old prod's pins were served again, through the
 * new prod's bindings, under the old prod-only grants). Undefined when nothing was scoped to it.
 */
export function withoutEnvironment(vs: VirtualServerState, environment: string): VirtualServerState | undefined {
  const scoped = [...vs.grants.values()].filter((grant) => grant.environment === environment);
  if (!vs.environments.has(environment) && !vs.environmentItems.has(environment) && !vs.rejected.has(environment) && scoped.length === 0) return undefined;
  const environments = new Map(vs.environments);
  const environmentItems = new Map(vs.environmentItems);
  const rejected = new Map(vs.rejected);
  const grants = new Map(vs.grants);
  environments.delete(environment);
  environmentItems.delete(environment);
  rejected.delete(environment);
  for (const grant of scoped) grants.delete(grant.grantId);
  return { ...vs, environments, environmentItems, rejected, grants };
}

/** The rejections with one entry set (a hash, or null for a tool that was gone) or, when `hash` is undefined, removed. */
/** Forgets the rejections of these names in the environment (the same map when there were none). */
function withoutRejections(rejected: VirtualServerState["rejected"], environment: string, names: readonly string[]) {
  const inEnvironment = rejected.get(environment);
  if (!names.some((name) => inEnvironment?.has(name))) return rejected;
  const kept = new Map(inEnvironment);
  for (const name of names) kept.delete(name);
  return new Map(rejected).set(environment, kept);
}

function withRejection(rejected: VirtualServerState["rejected"], environment: string, exposedName: string, hash: string | null | undefined) {
  const inEnvironment = new Map(rejected.get(environment));
  if (hash === undefined) inEnvironment.delete(exposedName);
  else inEnvironment.set(exposedName, hash);
  return new Map(rejected).set(environment, inEnvironment);
}
