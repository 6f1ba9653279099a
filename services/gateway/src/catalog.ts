import { Subjects, type SelectedTool } from "@manifold/contracts";
import type { CatalogProjection } from "@manifold/domain";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";

export interface ToolRoute {
  readonly upstream: string;
  readonly tool: string;
  /** Hash and input schema of the pinned definition: what arguments are checked against. */
  readonly hash: string;
  readonly inputSchema: Record<string, unknown>;
  readonly subject: string;
  readonly timeoutMs: number;
}

interface VirtualServerView {
  readonly tools: Tool[];
  readonly routes: ReadonlyMap<string, ToolRoute>;
  /** The serialized `result` of tools/list without the denied tools, built once per change and denied set. */
  listResult(denied: ReadonlySet<string>): Buffer;
}

/** A pinned definition as agents see it: under its exposed name, nothing else changed. */
function exposedTool(selected: SelectedTool): Tool {
  const description = selected.descriptionOverride ?? selected.definition.description;
  return { ...selected.definition, name: selected.exposedName, ...(description === undefined ? {} : { description }) } as Tool;
}

/**
 * The gateway's read model: per virtual server, the tools/list answer and the routing
 * table, built once per change so neither tools/list nor tools/call does any work
 * beyond a map lookup.
 */
export class GatewayCatalog {
  readonly projection: CatalogProjection;
  readonly #defaultTimeoutMs: number;
  readonly #views = new Map<string, VirtualServerView>();

  constructor(projection: CatalogProjection, defaultTimeoutMs: number) {
    this.projection = projection;
    this.#defaultTimeoutMs = defaultTimeoutMs;
    projection.onApplied((event) => {
      if (event.type.startsWith("virtual-server.")) this.#views.delete(event.data.name);
      // An upstream's options (its call timeout) are part of every route to it.
      else if (event.type === "upstream.registered" || event.type === "upstream.removed") this.#views.clear();
    });
  }

  has(virtualServer: string): boolean {
    return this.projection.virtualServer(virtualServer) !== undefined;
  }

  /** Undefined when the virtual server does not exist (any more). */
  view(virtualServer: string): VirtualServerView | undefined {
    const cached = this.#views.get(virtualServer);
    if (cached) return cached;
    const vs = this.projection.virtualServer(virtualServer);
    if (!vs) return undefined;
    const selected = [...vs.tools.values()].sort((a, b) => a.exposedName.localeCompare(b.exposedName));
    const route = (s: SelectedTool): ToolRoute => ({
      upstream: s.upstream,
      tool: s.tool,
      hash: s.hash,
      inputSchema: s.definition.inputSchema,
      subject: Subjects.upstreamCall(s.upstream),
      timeoutMs: this.projection.upstream(s.upstream)?.options.callTimeoutMs ?? this.#defaultTimeoutMs,
    });
    const tools = selected.map(exposedTool);
    const lists = new Map<string, Buffer>();
    const view: VirtualServerView = {
      tools,
      // Deprecated aliases still route to their tool, but are not listed.
      routes: new Map([
        ...selected.map((s): [string, ToolRoute] => [s.exposedName, route(s)]),
        ...[...vs.deprecatedAliases].flatMap(([old, current]): [string, ToolRoute][] => {
          const target = vs.tools.get(current);
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
    this.#views.set(virtualServer, view);
    return view;
  }
}
