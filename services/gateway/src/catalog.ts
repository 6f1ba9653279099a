import { DEFAULT_ENVIRONMENT, Subjects, type EnvironmentPin } from "@manifold/contracts";
import { boundUpstream, pinsIn, type CatalogProjection } from "@manifold/domain";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";

export interface ToolRoute {
  /** The concrete upstream in the environment. */
  readonly upstream: string;
  readonly tool: string;
  readonly subject: string;
  readonly timeoutMs: number;
  /** Hash and input schema of the pinned definition: what arguments are checked against. */
  readonly hash: string;
  readonly inputSchema: Record<string, unknown>;
}

interface VirtualServerView {
  readonly tools: Tool[];
  readonly routes: ReadonlyMap<string, ToolRoute>;
  /** The serialized `result` of tools/list without the denied tools, built once per change and denied set. */
  listResult(denied: ReadonlySet<string>): Buffer;
}

/** A pinned definition as agents see it: under its exposed name, with the description override if any. */
function exposedTool(pin: EnvironmentPin): Tool {
  const description = pin.descriptionOverride ?? pin.definition.description;
  return { ...pin.definition, name: pin.exposedName, ...(description === undefined ? {} : { description }) } as Tool;
}

/**
 * The gateway's read model: per virtual server and environment, the tools/list answer and the
 * routing table, built once per change so neither tools/list nor tools/call does any work
 * beyond a map lookup. Exposed names are the same in every environment; what differs is the
 * pins (promoted per environment) and which concrete upstream each logical one is bound to.
 */
export class GatewayCatalog {
  readonly projection: CatalogProjection;
  readonly #defaultTimeoutMs: number;
  readonly #views = new Map<string, VirtualServerView>();

  constructor(projection: CatalogProjection, defaultTimeoutMs: number) {
    this.projection = projection;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    projection.onApplied((event) => {
      if (event.type.startsWith("virtual-server.")) {
        for (const key of this.#views.keys()) if (key.endsWith(`\n${event.data.name}`)) this.#views.delete(key);
      } else if (event.type.startsWith("upstream.") || event.type.startsWith("environment.")) {
        // Bindings and upstream options (call timeouts) are part of every route.
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
    const key = `${environment}\n${virtualServer}`;
    const cached = this.#views.get(key);
    if (cached) return cached;
    const vs = this.projection.virtualServer(virtualServer);
    if (!vs || !this.has(virtualServer, environment)) return undefined;
    const env = this.projection.environment(environment);
    const pins = [...(pinsIn(vs, environment)?.values() ?? [])].sort((a, b) => a.exposedName.localeCompare(b.exposedName));
    const route = (pin: EnvironmentPin): ToolRoute => {
      const upstream = boundUpstream(env, pin.upstream);
      return {
        upstream,
        tool: pin.tool,
        subject: Subjects.upstreamCall(upstream),
        timeoutMs: this.projection.upstream(upstream)?.options.callTimeoutMs ?? this.#defaultTimeoutMs,
        hash: pin.hash,
        inputSchema: pin.definition.inputSchema,
      };
    };
    const byName = new Map(pins.map((p) => [p.exposedName, p]));
    const tools = pins.map(exposedTool);
    const lists = new Map<string, Buffer>();
    const view: VirtualServerView = {
      tools,
      // Deprecated aliases still route to their tool, but are not listed.
      routes: new Map([
        ...pins.map((p): [string, ToolRoute] => [p.exposedName, route(p)]),
        ...[...vs.deprecatedAliases].flatMap(([old, current]): [string, ToolRoute][] => {
          const target = byName.get(current);
          return target ? [[old, route(target)]] : [];
        }),
      ]),
      listResult(denied) {
        const key = [...denied].sort().join("\n");
        let list = lists.get(key);
        if (!list) lists.set(key, (list = Buffer.from(JSON.stringify({ tools: denied.size ? tools.filter((t) => !denied.has(t.name)) : tools }))));
        return list;
      },
    };
    this.#views.set(key, view);
    return view;
  }
}
