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
export function resolveToolRef(vs: VirtualServerState, ref: DeniedTool, selected?: ReadonlySet<string>): ToolIdentity[] {
  if (typeof ref === "string") {
    // A loop, not arrays of every environment per name: 1,000 names over 1,000 environments took 373 ms.
    const meant: ToolIdentity[] = [];
    const add = (pin: EnvironmentPin | undefined) => pin && meant.push({ upstream: pin.upstream, tool: pin.tool });
    add(vs.tools.get(ref));
    add(vs.tools.get(vs.deprecatedAliases.get(ref) ?? ""));
    for (const pins of vs.environments.values()) add(pins.get(ref));
    return meant;
  }
  return (selected ?? selectedKeys(vs)).has(toolKey(ref.upstream, ref.tool)) ? [{ upstream: ref.upstream, tool: ref.tool }] : [];
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
    // An identity `unselected` accepts means itself, selected or not: asked first, since finding it
    // among the pins is the costly part, and every node's evolve accepts each (`recorded`).
    const meant = typeof ref === "object" && ref !== null && unselected(ref as unknown as I) ? [ref as unknown as I] : resolve(ref);
    for (const identity of meant) identities.set(key(identity), identity);
    if (meant.length === 0) unresolved.push(ref);
  }
  return { identities: [...identities.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, id]) => id), unresolved };
}

/** Tool references resolved to identities (`resolveAll`). */
export const resolveToolRefs = (vs: VirtualServerState, refs: readonly DeniedTool[], unselected: (identity: ToolIdentity) => boolean = () => false) => {
  // Gathered once: a reference each scanned every pin of every environment (a 1 MiB grant of one
  // repeated identity held the registry's event loop 7.3 s; attacker run, helper-103). And only
  // when an identity needs it: a grant of names on a virtual server promoted to 1,000 environments
  // spent 500 ms gathering keys it never looked up.
  let selected: Set<string> | undefined;
  return resolveAll(refs, (ref) => resolveToolRef(vs, ref, typeof ref === "string" ? undefined : (selected ??= selectedKeys(vs))), (t) => toolKey(t.upstream, t.tool), unselected);
};
