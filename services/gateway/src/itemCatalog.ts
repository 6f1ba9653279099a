import { EventType, Subjects, type ItemKind, type Naming } from "@manifold/contracts";
import type { HealthBoard } from "@manifold/domain";

/**
 * Events that change what a virtual server's prompts and resources lists hold (agents hear
 * `list_changed`): selections, re-pins, promotions, and grants (they deny prompts and resources).
 */
const ITEM_EVENTS: ReadonlySet<string> = new Set([
  EventType.virtualServerItemsSelected,
  EventType.virtualServerItemsDeselected,
  EventType.virtualServerItemRepinned,
  EventType.virtualServerItemsRepinned,
  EventType.virtualServerPromoted,
  EventType.virtualServerAccessGranted,
  EventType.virtualServerAccessRevoked,
]);
export const changesItems = (type: string) => ITEM_EVENTS.has(type);
import { boundUpstream, exposeUri, parseExposedUri, parseItemKey, templateMatcher, type EnvironmentState, type ItemPins } from "@manifold/domain";

/** Where a prompt, resource or template is served: the concrete upstream in the environment, under its own name or URI. */
export interface ItemRoute {
  readonly upstream: string;
  /** The selection's (logical) upstream. */
  readonly logical: string;
  /** What exposed URIs are prefixed with: the logical upstream, or undefined under `bare` naming (URIs unchanged). */
  readonly uriPrefix: string | undefined;
  readonly subject: string;
  readonly timeoutMs: number;
  /** The upstream's own prompt name, URI or URI template. */
  readonly original: string;
}

export interface ItemView {
  readonly prompts: ReadonlyMap<string, ItemRoute>;
  /** The serialized-ready list entries, under exposed names and URIs. */
  readonly promptList: readonly Record<string, unknown>[];
  readonly resourceList: readonly Record<string, unknown>[];
  readonly templateList: readonly Record<string, unknown>[];
  /** Exposed URI template → route (for completions). */
  readonly templates: ReadonlyMap<string, ItemRoute>;
  /** The route and upstream URI of an exposed URI: a selected resource, or one a selected template of its upstream expands to. */
  resolveUri(exposed: string): ItemRoute | undefined;
  /** Whether URIs are exposed unchanged (`bare` naming). */
  readonly bare: boolean;
  /** The logical upstreams bound to a concrete one here. */
  logicalUpstreams(upstream: string): readonly string[];
  /** The upstreams behind its resources and templates. */
  readonly resourceUpstreams: ReadonlySet<string>;
  /** The upstreams behind its prompts, resources and templates: an agent may pass headers through to these (`VirtualServerView.passthroughFor`). */
  readonly upstreams: ReadonlySet<string>;
  /** What it exposes; `resources.subscribe` only as `offeredCapabilities` finds it, when a session opens. */
  readonly capabilities: { prompts?: { listChanged: true }; resources?: { subscribe?: true; listChanged: true }; completions?: Record<string, never> };
}

/**
 * The prompts, resources and templates of a virtual server as one environment serves them to a
 * caller: the environment's pins (`itemPinsIn`), routed to the upstream each logical one is bound
 * to there; prompts under their exposed names, resources under `<upstream>+<uri>`. What the
 * caller's grants deny (`deniedItems`, identity keys) is left out as if it were never selected:
 * an item is denied when any selection reaching the same concrete item here is, and a denied
 * resource denies every template that expands to it.
 */
export function buildItemView(
  pins: ItemPins,
  naming: Naming,
  env: EnvironmentState | undefined,
  timeoutOf: (upstream: string) => number,
  deniedItems: ReadonlySet<string> = new Set(),
): ItemView {
  const bare = naming.policy === "bare";
  const route = (logical: string, original: string): ItemRoute => {
    const upstream = boundUpstream(env, logical);
    return { upstream, logical, uriPrefix: bare ? undefined : logical, subject: Subjects.upstreamRequest(upstream), timeoutMs: timeoutOf(upstream), original };
  };
  // Two logical upstreams may be bound to one concrete upstream here: denying either identity denies the concrete item.
  const concrete = (kind: ItemKind, logical: string, original: string) => `${kind}\n${boundUpstream(env, logical)}\n${original}`;
  /** Each selected template's matcher, compiled once: for a denied URI's templates and for the routes. */
  const matcherOf = new Map([...pins.resourceTemplates.values()].map((t) => [t.uriTemplate, templateMatcher(t.uriTemplate)]));
  const deniedConcrete = new Set<string>();
  // Every denied item's concrete one here, selected in this environment or not: a binding that sends
  // another logical upstream to the denied item's upstream reaches the same item (before, only the
  // environment's own pins of a denied identity were, and a prompt denied as `a/p` ran as `b/p`
  // where `b` was bound to `a`; found by an attacker run).
  for (const key of deniedItems) {
    const item = parseItemKey(key);
    if (!item) continue;
    deniedConcrete.add(concrete(item.kind, item.upstream, item.original));
    if (item.kind !== "resource") continue;
    // A denied resource may be one URI a template expands to, selected or not. The upstream decides
    // what a URI means and may serve one resource under many spellings (server-everything reads
    // `blob/1` as `blob/01`, `blob/1.0`, `blob/0x1`, `blob/+1`): a URI cannot be denied alone inside a
    // template, so every selected template that expands to it is denied with it.
    const upstream = boundUpstream(env, item.upstream);
    for (const t of pins.resourceTemplates.values()) {
      if (boundUpstream(env, t.upstream) === upstream && matcherOf.get(t.uriTemplate)?.(item.original)) deniedConcrete.add(concrete("resource-template", t.upstream, t.uriTemplate));
    }
  }
  const shown = (kind: ItemKind, logical: string, original: string) => deniedConcrete.size === 0 || !deniedConcrete.has(concrete(kind, logical, original));
  const byName = <T>(entries: Iterable<[string, T]>) => [...entries].sort(([a], [b]) => a.localeCompare(b));
  const prompts = new Map<string, ItemRoute>();
  const promptList: Record<string, unknown>[] = [];
  for (const [exposedName, p] of byName(pins.prompts)) {
    if (!shown("prompt", p.upstream, p.prompt)) continue;
    prompts.set(exposedName, route(p.upstream, p.prompt));
    promptList.push({ ...p.definition, name: exposedName });
  }
  const resources = new Map<string, ItemRoute>();
  const resourceList: Record<string, unknown>[] = [];
  for (const [exposed, r] of byName(pins.resources)) {
    if (!shown("resource", r.upstream, r.uri)) continue;
    resources.set(exposed, route(r.upstream, r.uri));
    resourceList.push({ ...r.definition, uri: exposed });
  }
  const templates = new Map<string, ItemRoute>();
  const matchers: { logical: string; matches: (uri: string) => boolean; route: ItemRoute }[] = [];
  const templateList: Record<string, unknown>[] = [];
  for (const [exposed, t] of byName(pins.resourceTemplates)) {
    if (!shown("resource-template", t.upstream, t.uriTemplate)) continue;
    const r = route(t.upstream, t.uriTemplate);
    templates.set(exposed, r);
    const matches = matcherOf.get(t.uriTemplate);
    if (matches) matchers.push({ logical: t.upstream, matches, route: r });
    templateList.push({ ...t.definition, uriTemplate: exposed });
  }
  /** A URI a template expands to (a denied resource's templates are left out above). */
  const expanded = (template: ItemRoute, uri: string): ItemRoute => ({ ...template, original: uri });
  const hasResources = resources.size > 0 || templates.size > 0;
  // Once per view: each resource update asks it, for every view served (before, read from every resource and template on each).
  const logicalsOf = new Map<string, string[]>();
  for (const r of [...resources.values(), ...templates.values()]) {
    const logicals = logicalsOf.get(r.upstream);
    if (!logicals) logicalsOf.set(r.upstream, [r.logical]);
    else if (!logicals.includes(r.logical)) logicals.push(r.logical);
  }
  return {
    prompts,
    promptList,
    resourceList,
    templateList,
    templates,
    resolveUri(exposed) {
      const listed = resources.get(exposed);
      if (listed) return listed;
      if (bare) {
        const template = matchers.find((m) => m.matches(exposed));
        return template && expanded(template.route, exposed);
      }
      const parsed = parseExposedUri(exposed);
      if (!parsed || exposeUri(parsed.upstream, parsed.uri) !== exposed) return undefined;
      const template = matchers.find((m) => m.logical === parsed.upstream && m.matches(parsed.uri));
      return template && expanded(template.route, parsed.uri);
    },
    bare,
    resourceUpstreams: new Set(logicalsOf.keys()),
    upstreams: new Set([...logicalsOf.keys(), ...[...prompts.values()].map((p) => p.upstream)]),
    logicalUpstreams: (upstream) => logicalsOf.get(upstream) ?? [],
    capabilities: {
      ...(prompts.size > 0 ? { prompts: { listChanged: true as const } } : {}),
      ...(hasResources ? { resources: { listChanged: true as const } } : {}),
      ...(prompts.size > 0 || templates.size > 0 ? { completions: {} } : {}),
    },
  };
}

/** The exposed URIs under which a virtual server serves a concrete upstream's URI (a listed resource, or one its templates expand to). */
export function exposedUris(items: ItemView, upstream: string, uri: string): string[] {
  const out = new Set<string>();
  for (const logical of items.logicalUpstreams(upstream)) {
    const exposed = items.bare ? uri : exposeUri(logical, uri);
    if (exposed && items.resolveUri(exposed)?.upstream === upstream) out.add(exposed);
  }
  return [...out];
}

/**
 * A view's capabilities as its upstreams support them now: `resources.subscribe` only while some
 * upstream behind its resources takes subscriptions, or has not said yet (its replicas' health
 * reports carry what its session declared). Before, every view with resources said `subscribe:
 * true`, and a subscription whose upstream has none went upstream and came back -32012 (-32601).
 */
export function offeredCapabilities(items: ItemView | undefined, health: Pick<HealthBoard, "subscribes">): ItemView["capabilities"] {
  const capabilities = items?.capabilities ?? {};
  if (!items || !capabilities.resources || ![...items.resourceUpstreams].some((upstream) => health.subscribes(upstream) !== false)) return capabilities;
  return { ...capabilities, resources: { ...capabilities.resources, subscribe: true } };
}
