import { DEFAULT_ENVIRONMENT, ManifoldError, type EnvironmentPin, type ItemKind } from "@manifold/contracts";
import { classifyDrift, type Drift } from "./drift.js";
import { itemPinsIn } from "./environmentItems.js";
import { classifyPromptDrift, classifyResourceDrift } from "./itemDrift.js";
import type { CatalogView, EnvironmentState, UpstreamState, VirtualServerState } from "./state.js";

/** The concrete upstream a logical name means in an environment (the default binds every name to itself). */
export const boundUpstream = (environment: EnvironmentState | undefined, logical: string) => environment?.bindings.get(logical) ?? logical;

/** A virtual server's pins in an environment: the selection itself in the default one; promoted pins elsewhere. */
export function pinsIn(vs: VirtualServerState, environment: string): ReadonlyMap<string, EnvironmentPin> | undefined {
  return environment === DEFAULT_ENVIRONMENT ? vs.tools : vs.environments.get(environment);
}

export interface PromotionDifference extends Drift {
  /** A tool's or prompt's exposed name, or a resource's exposed URI (template). */
  exposedName: string;
  /** The concrete upstream in the target environment. */
  upstream: string;
  /** The upstream's own tool or prompt name, URI or URI template. */
  tool: string;
  /** Absent: a tool. */
  kind?: ItemKind;
}

/**
 * What promoting `from` → `to` would pin (the tools, all of them or `only` those; every prompt,
 * resource and template), and where the target environment's upstreams report definitions other
 * than those pins (each with its class and diff).
 */
export function planPromotion(vs: VirtualServerState, from: string, to: string, catalog: CatalogView, only?: readonly string[]) {
  if (from === to) throw new ManifoldError("invalid_request", "promote needs two different environments");
  if (to === DEFAULT_ENVIRONMENT) throw new ManifoldError("invalid_request", "the default environment is changed by selecting tools, not by promotion");
  const target = catalog.environment(to);
  if (!target) throw new ManifoldError("not_found", `environment '${to}' does not exist`);
  if (from !== DEFAULT_ENVIRONMENT && !catalog.environment(from)) throw new ManifoldError("not_found", `environment '${from}' does not exist`);
  const source = pinsIn(vs, from);
  if (!source) throw new ManifoldError("not_found", `virtual server '${vs.name}' has never been promoted to '${from}'`);
  const missing = only?.filter((name) => !source.has(name)) ?? [];
  if (missing.length > 0) throw new ManifoldError("not_found", `virtual server '${vs.name}' has no tool named ${missing.map((n) => `'${n}'`).join(", ")} in '${from}'`);
  const pins = only ? new Map(only.map((name) => [name, source.get(name)!])) : source;
  const differences: PromotionDifference[] = [];
  for (const pin of pins.values()) {
    const upstream = boundUpstream(target, pin.upstream);
    const current = catalog.upstream(upstream)?.tools.get(pin.tool);
    if (current?.hash === pin.hash) continue;
    differences.push({ exposedName: pin.exposedName, upstream, tool: pin.tool, ...classifyDrift(pin.definition, current?.definition) });
  }
  const items = itemPinsIn(vs, from);
  /** A pinned item against what the target's bound upstream reports now (its class and diff when they differ). */
  const differ = <D>(kind: ItemKind, key: string, pin: { upstream: string; hash: string }, original: string, current: (u: UpstreamState) => { hash: string; definition: D } | undefined, classify: (now: D | undefined) => Drift) => {
    const upstream = boundUpstream(target, pin.upstream);
    const state = catalog.upstream(upstream);
    const now = state && current(state);
    if (now?.hash !== pin.hash) differences.push({ exposedName: key, upstream, tool: original, kind, ...classify(now?.definition) });
  };
  for (const [key, p] of items.prompts) differ("prompt", key, p, p.prompt, (u) => u.prompts.get(p.prompt), (now) => classifyPromptDrift(p.definition, now));
  for (const [key, r] of items.resources) differ("resource", key, r, r.uri, (u) => u.resources.get(r.uri), (now) => classifyResourceDrift(r.definition, now));
  for (const [key, t] of items.resourceTemplates) differ("resource-template", key, t, t.uriTemplate, (u) => u.resourceTemplates.get(t.uriTemplate), (now) => classifyResourceDrift(t.definition, now));
  const promoted = { prompts: [...items.prompts.values()], resources: [...items.resources.values()], resourceTemplates: [...items.resourceTemplates.values()] };
  return { pins: [...pins.values()], items: promoted, differences };
}
