import { DEFAULT_ENVIRONMENT, Subjects, publishedInputSchema, toolHeaderValue, type EnvironmentPin, type Naming } from "@manifold/contracts";
import { allowedPassthrough, boundUpstream, itemPinsIn, pinsIn, toolKey, type CatalogProjection } from "@manifold/domain";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { buildItemView, type ItemView } from "./itemCatalog.js";
import { exposeToolMeta } from "./resultUris.js";

export interface ToolRoute {
  /** The concrete upstream in the environment. */
  readonly upstream: string;
  /** What resource URIs in the tool's results are prefixed with (the selection's upstream); undefined under `bare` naming. */
  readonly uriPrefix: string | undefined;
  readonly tool: string;
  /** `tool` as the bus carries it (`toolHeaderValue`), made once rather than per call. */
  readonly toolHeader: string;
  readonly subject: string;
  readonly timeoutMs: number;
  /** Hash and input schema of the pinned definition (as published, `publishedInputSchema`): what arguments and `Mcp-Param-*` headers are checked against. */
  readonly hash: string;
  readonly inputSchema: Record<string, unknown>;
  /** The pinned `outputSchema`, when the tool has one: its results are held to it (`outputSchemaCheck.ts`). */
  readonly outputSchema?: Record<string, unknown> | undefined;
  /** The pinned `execution.taskSupport` (2025-11-25 tasks): `required`, `optional`, or absent (forbidden). */
  readonly taskSupport?: string | undefined;
  /**
   * The tool identities (`toolKey` of upstream and original name) this route reaches: the concrete
   * tool's, its own selection's, and any other selection bound to the same concrete tool here.
   * Denying any of them denies the route, whichever name (alias, deprecated alias) is called.
   */
  readonly identities: readonly string[];
}

/** What one caller may see of a virtual server, given the identities denied to it. */
export interface Visible {
  readonly tools: readonly Tool[];
  /** The serialized `result` of tools/list. */
  readonly list: Buffer;
  /** Concrete upstreams a visible tool routes to → the header names an agent may pass through to each (lower case). */
  readonly passthrough: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface VirtualServerView {
  /** Exposed names and deprecated aliases → route. */
  readonly routes: ReadonlyMap<string, ToolRoute>;
  /** The routes to a concrete tool (`upstream`, `tool`), in `routes` order: a task finds its tool by identity (`tasks.ts`). */
  routesTo(upstream: string, tool: string): readonly ToolRoute[];
  /**
   * The 2026-07-28 `cacheScope` of its tool list: `public` ("any client, shared gateway, or caching
   * proxy MAY … serve the cached response to any user") only where every caller, even one without
   * credentials, gets the same list; `private` where only granted callers may read it (others get
   * `unknown_virtual_server`), or where some grant hides tools (a shared cache keyed by the URL would
   * hand one caller's list to another whose grant hides part of it).
   */
  readonly cacheScope: "public" | "private";
  /** Built once per change and denied set. */
  visible(denied: ReadonlySet<string>): Visible;
  /** The prompts, resources and templates a caller with these denied item identities may see and reach; built once per change and denied set. */
  itemsFor(deniedItems: ReadonlySet<string>): ItemView;
  /**
   * Concrete upstreams the caller reaches here, by a visible tool or a visible prompt, resource or
   * template, → the header names an agent may pass through to each (lower case). Before, only a
   * visible tool's upstream counted: a virtual server serving an upstream's resources alone refused
   * its pass-through headers, and its reads went with the service credential.
   */
  passthroughFor(denied: ReadonlySet<string>, deniedItems: ReadonlySet<string>): ReadonlyMap<string, ReadonlySet<string>>;
}

/** Whether a caller with these denied identities may call the route. */
export const isDenied = (route: ToolRoute, denied: ReadonlySet<string>): boolean => denied.size > 0 && route.identities.some((k) => denied.has(k));

/**
 * A pinned definition as agents of either era see it: under its exposed name, with the description
 * override if any, and its input schema as published (`publishedInputSchema`), which is also the one
 * its `Mcp-Param-*` headers are checked against.
 */
function exposedTool(pin: EnvironmentPin, naming: Naming, inputSchema: Record<string, unknown>): Tool {
  const description = pin.descriptionOverride ?? pin.definition.description;
  return exposeToolMeta({ ...pin.definition, name: pin.exposedName, inputSchema, ...(description === undefined ? {} : { description }) }, naming.policy === "bare" ? undefined : pin.upstream) as Tool;
}

/** One key per denied set, memoized per set object (the gatekeeper keeps one per caller). */
const deniedKeys = new WeakMap<ReadonlySet<string>, string>();
export function deniedKey(denied: ReadonlySet<string>): string {
  let key = deniedKeys.get(denied);
  if (key === undefined) deniedKeys.set(denied, (key = [...denied].sort().join("\n")));
  return key;
}

/**
 * Who reads a virtual server's tool list without credentials: every caller (`GATEWAY_AUTH=off`),
 * those of a virtual server with an anonymous grant (`GATEWAY_ALLOW_ANONYMOUS=true`), or no one.
 */
export type OpenLists = "all" | "anonymous-grant" | "none";

/**
 * The gateway's read model: per virtual server and environment, the tools/list answer and the
 * routing table, built once per change so neither tools/list nor tools/call does any work
 * beyond a map lookup. Exposed names are the same in every environment; what differs is the
 * pins (promoted per environment) and which concrete upstream each logical one is bound to.
 */
export class GatewayCatalog {
  readonly projection: CatalogProjection;
  readonly #defaultTimeoutMs: number;
  readonly #openLists: OpenLists;
  /**
   * By environment, then virtual server: two lookups of strings whose hashes V8 keeps, where one key
   * made of both was a new string to build and hash on each of a call's several lookups.
   */
  readonly #views = new Map<string, Map<string, VirtualServerView>>();

  constructor(projection: CatalogProjection, defaultTimeoutMs: number, openLists: OpenLists) {
    this.projection = projection;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    this.#openLists = openLists;
    projection.onApplied((event) => {
      if (event.type.startsWith("virtual-server.")) {
        for (const views of this.#views.values()) views.delete(event.data.name);
      } else if (event.type.startsWith("upstream.") || event.type.startsWith("environment.")) {
        // Bindings and upstream options (call timeouts, pass-through headers) are part of every view.
        if (event.type !== "upstream.tools-discovered") this.#views.clear();
      }
    });
  }

  /** Whether the virtual server is served in the environment (the default always; others once promoted). */
  has(virtualServer: string, environment = DEFAULT_ENVIRONMENT): boolean {
    const vs = this.projection.virtualServer(virtualServer);
    return vs !== undefined && (environment === DEFAULT_ENVIRONMENT || (this.projection.environment(environment) !== undefined && vs.environments.has(environment)));
  }

  /** Undefined when the virtual server does not exist (any more) in that environment. */
  view(virtualServer: string, environment = DEFAULT_ENVIRONMENT): VirtualServerView | undefined {
    const cached = this.#views.get(environment)?.get(virtualServer);
    if (cached) return cached;
    const vs = this.projection.virtualServer(virtualServer);
    if (!vs || !this.has(virtualServer, environment)) return undefined;
    const env = this.projection.environment(environment);
    const pins = [...(pinsIn(vs, environment)?.values() ?? [])].sort((a, b) => a.exposedName.localeCompare(b.exposedName));
    // A route carries the identity of the concrete tool it reaches here, and those of every selection
    // an environment binds to it: a grant that denies `a/echo` denies it however it is reached. Before,
    // only the environment's own selections counted, and where `b` was bound to `a` with only `b/echo`
    // promoted, `b/echo` ran `a`'s denied tool (found by an attacker run, test/e2e/boundDenials.e2e).
    const identitiesOf = new Map<string, string[]>();
    for (const pin of pins) {
      const target = toolKey(boundUpstream(env, pin.upstream), pin.tool);
      const identities = identitiesOf.get(target) ?? [target];
      const own = toolKey(pin.upstream, pin.tool);
      if (!identities.includes(own)) identities.push(own);
      identitiesOf.set(target, identities);
    }
    const routeOf = new Map(
      pins.map((pin): [string, ToolRoute] => {
        const upstream = boundUpstream(env, pin.upstream);
        const route: ToolRoute = {
          upstream,
          uriPrefix: vs.naming.policy === "bare" ? undefined : pin.upstream,
          tool: pin.tool,
          toolHeader: toolHeaderValue(pin.tool),
          subject: Subjects.upstreamCall(upstream),
          timeoutMs: this.projection.upstream(upstream)?.options.callTimeoutMs ?? this.#defaultTimeoutMs,
          hash: pin.hash,
          inputSchema: publishedInputSchema(pin.definition.inputSchema),
          outputSchema: pin.definition.outputSchema,
          taskSupport: typeof pin.definition.execution?.taskSupport === "string" ? pin.definition.execution.taskSupport : undefined,
          identities: identitiesOf.get(toolKey(upstream, pin.tool))!,
        };
        return [pin.exposedName, route];
      }),
    );
    // Deprecated aliases still route to their tool, but are not listed.
    const routes = new Map(routeOf);
    for (const [old, current] of vs.deprecatedAliases) {
      const route = routeOf.get(current);
      if (route) routes.set(old, route);
    }
    // Indexed once per change: a task's requests and status notices each look their tool up (before, every route was searched).
    const byTool = new Map<string, ToolRoute[]>();
    for (const route of routeOf.values()) {
      const key = `${route.upstream}\n${route.tool}`;
      const same = byTool.get(key);
      if (same) same.push(route);
      else byTool.set(key, [route]);
    }
    const byKey = new Map<string, Visible>();
    const bySet = new WeakMap<ReadonlySet<string>, Visible>();
    const build = (denied: ReadonlySet<string>): Visible => {
      const shown = pins.filter((p) => !isDenied(routeOf.get(p.exposedName)!, denied));
      const tools = shown.map((pin) => exposedTool(pin, vs.naming, routeOf.get(pin.exposedName)!.inputSchema));
      const passthrough = new Map<string, ReadonlySet<string>>();
      for (const pin of shown) {
        const upstream = routeOf.get(pin.exposedName)!.upstream;
        const state = this.projection.upstream(upstream);
        if (state && !passthrough.has(upstream)) passthrough.set(upstream, allowedPassthrough(state));
      }
      return { tools, list: Buffer.from(JSON.stringify({ tools })), passthrough };
    };
    const upstreamState = (upstream: string) => this.projection.upstream(upstream);
    const passthroughOf = new WeakMap<Visible, WeakMap<ItemView, ReadonlyMap<string, ReadonlySet<string>>>>();
    const timeoutOf = (upstream: string) => this.projection.upstream(upstream)?.options.callTimeoutMs ?? this.#defaultTimeoutMs;
    const itemPins = itemPinsIn(vs, environment);
    const grants = [...vs.grants.values()];
    const items = buildItemView(itemPins, vs.naming, env, timeoutOf);
    const itemsByKey = new Map<string, ItemView>();
    const itemsBySet = new WeakMap<ReadonlySet<string>, ItemView>();
    const view: VirtualServerView = {
      routes,
      routesTo: (upstream, tool) => byTool.get(`${upstream}\n${tool}`) ?? [],
      cacheScope: !grants.some((grant) => grant.deniedTools.length > 0) && (this.#openLists === "all" || (this.#openLists === "anonymous-grant" && grants.some((grant) => "anonymous" in grant.subject))) ? "public" : "private",
      itemsFor(deniedItems) {
        if (deniedItems.size === 0) return items;
        let filtered = itemsBySet.get(deniedItems);
        if (filtered) return filtered;
        const key = deniedKey(deniedItems);
        filtered = itemsByKey.get(key);
        if (!filtered) itemsByKey.set(key, (filtered = buildItemView(itemPins, vs.naming, env, timeoutOf, deniedItems)));
        itemsBySet.set(deniedItems, filtered);
        return filtered;
      },
      passthroughFor(denied, deniedItems) {
        const visible = view.visible(denied);
        const items = view.itemsFor(deniedItems);
        // Built once per visible tools and items (both kept per change and denied set), not per request.
        let byItems = passthroughOf.get(visible);
        if (!byItems) passthroughOf.set(visible, (byItems = new WeakMap()));
        const known = byItems.get(items);
        if (known) return known;
        const merged = new Map(visible.passthrough);
        for (const upstream of items.upstreams) {
          const state = merged.has(upstream) ? undefined : upstreamState(upstream);
          if (state) merged.set(upstream, allowedPassthrough(state));
        }
        byItems.set(items, merged);
        return merged;
      },
      visible(denied) {
        let visible = bySet.get(denied);
        if (visible) return visible;
        const key = deniedKey(denied);
        visible = byKey.get(key);
        if (!visible) byKey.set(key, (visible = build(denied)));
        bySet.set(denied, visible);
        return visible;
      },
    };
    let views = this.#views.get(environment);
    if (!views) this.#views.set(environment, (views = new Map()));
    views.set(virtualServer, view);
    return view;
  }
}
