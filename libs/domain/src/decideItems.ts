import {
  DEFAULT_ENVIRONMENT,
  EventType,
  ManifoldError,
  type DiscoveredPrompt,
  type DiscoveredResource,
  type DiscoveredResourceTemplate,
  type DriftReview,
  type Naming,
  type NewEvent,
  type PromptRef,
  type ResourceRef,
  type SelectedPrompt,
  type SelectedResource,
  type SelectedResourceTemplate,
  type UpstreamPrompt,
  type UpstreamResource,
  type UpstreamResourceTemplate,
} from "@manifold/contracts";
import { definitionPatch } from "./definitionText.js";
import { discoverPrompt, discoverResource, discoverResourceTemplate } from "./itemPins.js";
import { classifyPromptDrift, classifyResourceDrift } from "./itemDrift.js";
import { exposedNameFor } from "./naming.js";
import { mustBeAsReviewed } from "./pendingDrift.js";
import { currentItem, driftingItems, type DriftingItem } from "./pendingItemDrift.js";
import { exposeUri } from "./resourceUris.js";
import type { CatalogView, UpstreamState, VirtualServerState } from "./state.js";
import { newEvent } from "./newEvent.js";

type Change = { tool: string; before: string | null; after: string | null; classification: "compatible" | "breaking" | "description-changed"; diff: { op: string; path: string }[]; kind: "prompt" | "resource" | "resource-template" };

export interface DiscoveredItems {
  prompts: DiscoveredPrompt[];
  resources: DiscoveredResource[];
  resourceTemplates: DiscoveredResourceTemplate[];
  changes: Change[];
  /** Whether the upstream reports the same prompts, resources and templates as last time. */
  unchanged: boolean;
}

function changesOf<D extends { hash: string; definition: object }>(kind: Change["kind"], before: ReadonlyMap<string, D>, now: ReadonlyMap<string, D>, classify: (b: D["definition"], a: D["definition"] | undefined) => { classification: Change["classification"]; diff: unknown[] }): Change[] {
  return [...new Set([...before.keys(), ...now.keys()])].flatMap((key) => {
    const b = before.get(key);
    const a = now.get(key);
    if (b?.hash === a?.hash) return [];
    const { classification, diff } = b ? classify(b.definition, a?.definition) : { classification: "compatible" as const, diff: definitionPatch({}, a!.definition) };
    return [{ tool: key, before: b?.hash ?? null, after: a?.hash ?? null, classification, diff: diff as Change["diff"], kind }];
  });
}

/** Pins what a discovery lists beside the tools and says how it moved since the last one. */
export function discoveredItems(
  upstream: UpstreamState,
  listed: { prompts?: UpstreamPrompt[] | undefined; resources?: UpstreamResource[] | undefined; resourceTemplates?: UpstreamResourceTemplate[] | undefined },
): DiscoveredItems {
  const prompts = (listed.prompts ?? []).map(discoverPrompt);
  const resources = (listed.resources ?? []).map(discoverResource);
  const resourceTemplates = (listed.resourceTemplates ?? []).map(discoverResourceTemplate);
  const p = new Map(prompts.map((x) => [x.definition.name, x]));
  const r = new Map(resources.map((x) => [x.definition.uri, x]));
  const t = new Map(resourceTemplates.map((x) => [x.definition.uriTemplate, x]));
  const changes = [
    ...changesOf("prompt", upstream.prompts, p, classifyPromptDrift),
    ...changesOf("resource", upstream.resources, r, classifyResourceDrift),
    ...changesOf("resource-template", upstream.resourceTemplates, t, classifyResourceDrift),
  ];
  const same = <D extends { hash: string }>(a: ReadonlyMap<string, D>, b: ReadonlyMap<string, D>) => a.size === b.size && [...b].every(([k, v]) => a.get(k)?.hash === v.hash);
  return { prompts, resources, resourceTemplates, changes, unchanged: same(upstream.prompts, p) && same(upstream.resources, r) && same(upstream.resourceTemplates, t) };
}

export interface ResolvedItems {
  prompts: SelectedPrompt[];
  resources: SelectedResource[];
  resourceTemplates: SelectedResourceTemplate[];
}

/**
 * Pins each referenced prompt, resource and template as discovered. Prompts are named by the
 * virtual server's naming policy (or their alias) in one namespace with its tools, with the same
 * collision rules; resources are exposed as `<upstream>+<uri>`. Already selected ones are skipped.
 */
export function resolveItems(
  refs: { prompts: PromptRef[]; resources: ResourceRef[] },
  catalog: CatalogView,
  vs: VirtualServerState | undefined,
  naming: Naming,
  /** Exposed names the same command gives tools. */
  toolNames: ReadonlySet<string> = new Set(),
): ResolvedItems {
  const source = (name: string) => {
    const upstream = catalog.upstream(name);
    if (!upstream) throw new ManifoldError("not_found", `upstream '${name}' does not exist`);
    return upstream;
  };
  const prompts = new Map<string, SelectedPrompt>();
  for (const { upstream, prompt, alias } of refs.prompts) {
    const discovered = source(upstream).prompts.get(prompt);
    if (!discovered) throw new ManifoldError("tool_not_discovered", `upstream '${upstream}' has no discovered prompt '${prompt}'`, { upstream, prompt });
    if (vs && [...vs.prompts.values()].some((p) => p.upstream === upstream && p.prompt === prompt)) continue;
    const exposedName = alias ?? exposedNameFor(upstream, prompt, naming);
    const taken = vs?.prompts.get(exposedName) ?? prompts.get(exposedName);
    if (taken && taken.upstream === upstream && taken.prompt === prompt) continue;
    const tool = vs?.tools.get(exposedName);
    if (taken || tool || toolNames.has(exposedName) || vs?.deprecatedAliases.has(exposedName)) {
      const other = taken ? `prompt '${taken.prompt}' on upstream '${taken.upstream}'` : tool ? `tool '${tool.tool}' on upstream '${tool.upstream}'` : "a tool's name";
      throw new ManifoldError("name_collision", `exposed name '${exposedName}' of prompt '${prompt}' on upstream '${upstream}' collides with ${other}`, { exposedName });
    }
    prompts.set(exposedName, { exposedName, upstream, prompt, hash: discovered.hash, definition: discovered.definition });
  }
  const resources = new Map<string, SelectedResource>();
  const resourceTemplates = new Map<string, SelectedResourceTemplate>();
  for (const ref of refs.resources) {
    const { upstream } = ref;
    const isTemplate = "uriTemplate" in ref;
    const original = isTemplate ? ref.uriTemplate : ref.uri;
    const exposed = exposeUri(upstream, original, naming);
    if (!exposed) throw new ManifoldError("invalid_request", `resource '${original}' of upstream '${upstream}' has no scheme, or is too long to be exposed`, { upstream });
    const state = source(upstream);
    const discovered = isTemplate ? state.resourceTemplates.get(original) : state.resources.get(original);
    if (!discovered) {
      const what = isTemplate ? "resource template" : "resource";
      throw new ManifoldError("tool_not_discovered", `upstream '${upstream}' has no discovered ${what} '${original}'`, { upstream, [isTemplate ? "uriTemplate" : "uri"]: original });
    }
    // Under `bare` naming two upstreams' same URI (template) would be one: refused, like a tool name.
    const taken = isTemplate ? (vs?.resourceTemplates.get(exposed) ?? resourceTemplates.get(exposed)) : (vs?.resources.get(exposed) ?? resources.get(exposed));
    if (taken && taken.upstream !== upstream) {
      throw new ManifoldError("name_collision", `exposed URI '${exposed}' of upstream '${upstream}' collides with upstream '${taken.upstream}'s`, { uri: exposed });
    }
    if (isTemplate) {
      if (!vs?.resourceTemplates.has(exposed)) resourceTemplates.set(exposed, { upstream, uriTemplate: original, hash: discovered.hash, definition: discovered.definition as SelectedResourceTemplate["definition"] });
    } else if (!vs?.resources.has(exposed)) resources.set(exposed, { upstream, uri: original, hash: discovered.hash, definition: discovered.definition as SelectedResource["definition"] });
  }
  return { prompts: [...prompts.values()], resources: [...resources.values()], resourceTemplates: [...resourceTemplates.values()] };
}

/** The items as event fields: only the kinds that have any. */
export function itemFields(items: ResolvedItems): Partial<ResolvedItems> {
  return {
    ...(items.prompts.length ? { prompts: items.prompts } : {}),
    ...(items.resources.length ? { resources: items.resources } : {}),
    ...(items.resourceTemplates.length ? { resourceTemplates: items.resourceTemplates } : {}),
  };
}

/** Removes prompts (by exposed name) and resources or templates (by exposed URI); unknown ones are refused, named. */
export function deselectItems(vs: VirtualServerState, prompts: string[], uris: string[]): NewEvent[] {
  const missing = [...prompts.filter((p) => !vs.prompts.has(p)).map((p) => `prompt '${p}'`), ...uris.filter((u) => !vs.resources.has(u) && !vs.resourceTemplates.has(u)).map((u) => `resource '${u}'`)];
  if (missing.length > 0) throw new ManifoldError("not_found", `virtual server '${vs.name}' has no ${missing.join(", ")}`);
  const resources = uris.filter((u) => vs.resources.has(u));
  const resourceTemplates = uris.filter((u) => vs.resourceTemplates.has(u));
  if (prompts.length + uris.length === 0) return [];
  return [
    newEvent(EventType.virtualServerItemsDeselected, {
      name: vs.name,
      ...(prompts.length ? { prompts: [...new Set(prompts)] } : {}),
      ...(resources.length ? { resources: [...new Set(resources)] } : {}),
      ...(resourceTemplates.length ? { resourceTemplates: [...new Set(resourceTemplates)] } : {}),
    }),
  ];
}

/** Accepts or rejects pending drift of a prompt (exposed name) or resource / template (exposed URI) in an environment; undefined when none is pending under that key. */
export function decideItemDrift(vs: VirtualServerState, catalog: CatalogView, key: string, accept: boolean, environment = DEFAULT_ENVIRONMENT, review: DriftReview = {}): NewEvent[] | undefined {
  // Found unclassified: a decision needs no class, nor the other items' (10,000 may drift).
  let drift: DriftingItem | undefined;
  for (const d of driftingItems(vs, catalog, environment)) {
    if (d.key !== key) continue;
    drift = d;
    break;
  }
  if (!drift) return undefined;
  mustBeAsReviewed(review, drift, `${drift.kind} '${key}'`);
  const where = environment === DEFAULT_ENVIRONMENT ? {} : { environment };
  if (!accept) return [newEvent(EventType.virtualServerItemDriftRejected, { name: vs.name, kind: drift.kind, key, hash: drift.currentHash, ...where })];
  const current = currentItem(catalog, drift);
  if (!current) throw new ManifoldError("in_use", `${drift.kind} '${drift.original}' is gone from upstream '${drift.upstream}': deselect '${key}' instead of accepting`);
  return [newEvent(EventType.virtualServerItemRepinned, { name: vs.name, kind: drift.kind, key, hash: current.hash, definition: current.definition, ...where })];
}
