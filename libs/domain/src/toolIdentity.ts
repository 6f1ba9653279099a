import type { DeniedTool, EnvironmentPin, ToolIdentity } from "@manifold/contracts";
import type { VirtualServerState } from "./state.js";

/**
 * The key of a tool identity in sets and maps. Upstream names never contain `/`, so the key is
 * unambiguous whatever the original tool name holds.
 */
export const toolKey = (upstream: string, tool: string): string => `${upstream}/${tool}`;

/** Every pin of a virtual server: its selection and what was promoted into environments. */
function* allPins(vs: VirtualServerState): Iterable<EnvironmentPin> {
  yield* vs.tools.values();
  for (const pins of vs.environments.values()) yield* pins.values();
}

/**
 * The identity a denied-tool reference means in a virtual server: an exposed name (current,
 * deprecated alias, or one an environment still serves) or an identity the virtual server
 * selects somewhere. Undefined when it names nothing there.
 */
export function resolveToolRef(vs: VirtualServerState, ref: DeniedTool): ToolIdentity | undefined {
  if (typeof ref === "string") {
    const pin =
      vs.tools.get(ref) ??
      vs.tools.get(vs.deprecatedAliases.get(ref) ?? "") ??
      [...vs.environments.values()].map((pins) => pins.get(ref)).find((p) => p !== undefined);
    return pin && { upstream: pin.upstream, tool: pin.tool };
  }
  for (const pin of allPins(vs)) if (pin.upstream === ref.upstream && pin.tool === ref.tool) return { upstream: pin.upstream, tool: pin.tool };
  return undefined;
}

/** Resolves references to identities, once each, in a stable order; `unresolved` lists what named nothing. */
export function resolveToolRefs(vs: VirtualServerState, refs: readonly DeniedTool[]): { identities: ToolIdentity[]; unresolved: DeniedTool[] } {
  const identities = new Map<string, ToolIdentity>();
  const unresolved: DeniedTool[] = [];
  for (const ref of refs) {
    const identity = resolveToolRef(vs, ref);
    if (identity) identities.set(toolKey(identity.upstream, identity.tool), identity);
    else unresolved.push(ref);
  }
  return { identities: [...identities.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, id]) => id), unresolved };
}
