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
 * The identities a denied-tool reference means in a virtual server: for an exposed name, every tool
 * it names anywhere (its selection, a deprecated alias, each environment, which may serve another
 * tool under it: denying the name denies each, never only the selection's); for an identity, that
 * identity where the virtual server selects it somewhere. Empty when it names nothing there.
 */
export function resolveToolRef(vs: VirtualServerState, ref: DeniedTool, selected: ReadonlySet<string> = selectedKeys(vs)): ToolIdentity[] {
  if (typeof ref === "string") {
    const pins = [vs.tools.get(ref), vs.tools.get(vs.deprecatedAliases.get(ref) ?? ""), ...[...vs.environments.values()].map((env) => env.get(ref))];
    return pins.flatMap((pin) => (pin ? [{ upstream: pin.upstream, tool: pin.tool }] : []));
  }
  return selected.has(toolKey(ref.upstream, ref.tool)) ? [{ upstream: ref.upstream, tool: ref.tool }] : [];
}

/** Every identity the virtual server selects somewhere (`toolKey`), gathered once per decision. */
const selectedKeys = (vs: VirtualServerState): Set<string> => {
  const keys = new Set<string>();
  for (const pin of allPins(vs)) keys.add(toolKey(pin.upstream, pin.tool));
  return keys;
};

/**
 * Resolves references once each, in a stable order (by key); `unresolved` lists what named nothing.
 * An identity (a reference that is an object) nothing selects counts when `unselected` accepts it: a
 * grant may deny a tool, prompt or resource before it is selected, so that it is never callable in
 * between (prompts and resources: `itemIdentity.ts`).
 */
export function resolveAll<R, I extends object>(refs: readonly R[], resolve: (ref: R) => I[], key: (identity: I) => string, unselected: (identity: I) => boolean): { identities: I[]; unresolved: R[] } {
  const identities = new Map<string, I>();
  const unresolved: R[] = [];
  for (const ref of refs) {
    let meant = resolve(ref);
    if (meant.length === 0 && typeof ref === "object" && ref !== null && unselected(ref as unknown as I)) meant = [ref as unknown as I];
    for (const identity of meant) identities.set(key(identity), identity);
    if (meant.length === 0) unresolved.push(ref);
  }
  return { identities: [...identities.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, id]) => id), unresolved };
}

/** Tool references resolved to identities (`resolveAll`). */
export const resolveToolRefs = (vs: VirtualServerState, refs: readonly DeniedTool[], unselected: (identity: ToolIdentity) => boolean = () => false) => {
  // Gathered once: a reference each scanned every pin of every environment (a 1 MiB grant of one
  // repeated identity held the registry's event loop 7.3 s; attacker run, helper-103).
  const selected = selectedKeys(vs);
  return resolveAll(refs, (ref) => resolveToolRef(vs, ref, selected), (t) => toolKey(t.upstream, t.tool), unselected);
};
