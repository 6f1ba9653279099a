import { EventType, Subjects } from "@manifold/contracts";

/** Events that change what a virtual server's prompts and resources lists hold (agents hear `list_changed`). */
const ITEM_EVENTS: ReadonlySet<string> = new Set([EventType.virtualServerItemsSelected, EventType.virtualServerItemsDeselected, EventType.virtualServerItemRepinned]);
export const changesItems = (type: string) => ITEM_EVENTS.has(type);
import { boundUpstream, exposeUri, parseExposedUri, templateMatcher, type EnvironmentState, type VirtualServerState } from "@manifold/domain";

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
  logicalUpstreams(upstream: string): string[];
  readonly capabilities: { prompts?: { listChanged: true }; resources?: { subscribe: true; listChanged: true }; completions?: Record<string, never> };
}

/**
 * The prompts, resources and templates of a virtual server as one environment serves them:
 * pinned once for every environment (not promoted), routed to the upstream each logical one is
 * bound to there; prompts under their exposed names, resources under `<upstream>+<uri>`.
 */
export function buildItemView(vs: VirtualServerState, env: EnvironmentState | undefined, timeoutOf: (upstream: string) => number): ItemView {
  const bare = vs.naming.policy === "bare";
  const route = (logical: string, original: string): ItemRoute => {
    const upstream = boundUpstream(env, logical);
    return { upstream, logical, uriPrefix: bare ? undefined : logical, subject: Subjects.upstreamRequest(upstream), timeoutMs: timeoutOf(upstream), original };
  };
  const byName = <T>(entries: Iterable<[string, T]>) => [...entries].sort(([a], [b]) => a.localeCompare(b));
  const prompts = new Map<string, ItemRoute>();
  const promptList: Record<string, unknown>[] = [];
  for (const [exposedName, p] of byName(vs.prompts)) {
    prompts.set(exposedName, route(p.upstream, p.prompt));
    promptList.push({ ...p.definition, name: exposedName });
  }
  const resources = new Map<string, ItemRoute>();
  const resourceList: Record<string, unknown>[] = [];
  for (const [exposed, r] of byName(vs.resources)) {
    resources.set(exposed, route(r.upstream, r.uri));
    resourceList.push({ ...r.definition, uri: exposed });
  }
  const templates = new Map<string, ItemRoute>();
  const matchers: { logical: string; matches: (uri: string) => boolean; route: ItemRoute }[] = [];
  const templateList: Record<string, unknown>[] = [];
  for (const [exposed, t] of byName(vs.resourceTemplates)) {
    const r = route(t.upstream, t.uriTemplate);
    templates.set(exposed, r);
    const matches = templateMatcher(t.uriTemplate);
    if (matches) matchers.push({ logical: t.upstream, matches, route: r });
    templateList.push({ ...t.definition, uriTemplate: exposed });
  }
  const hasResources = resources.size > 0 || templates.size > 0;
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
        return template && { ...template.route, original: exposed };
      }
      const parsed = parseExposedUri(exposed);
      if (!parsed || exposeUri(parsed.upstream, parsed.uri) !== exposed) return undefined;
      const template = matchers.find((m) => m.logical === parsed.upstream && m.matches(parsed.uri));
      return template && { ...template.route, original: parsed.uri };
    },
    bare,
    logicalUpstreams: (upstream) => [...new Set([...resources.values(), ...templates.values()].filter((r) => r.upstream === upstream).map((r) => r.logical))],
    capabilities: {
      ...(prompts.size > 0 ? { prompts: { listChanged: true as const } } : {}),
      ...(hasResources ? { resources: { subscribe: true as const, listChanged: true as const } } : {}),
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
