import { createHash } from "node:crypto";
import { DEFAULT_ENVIRONMENT, ManifoldError, type EnvironmentPin, type ItemKind, type PromotedPins } from "@manifold/contracts";
import { classifyDrift, type Drift } from "./drift.js";
import { itemPinsIn, type ItemPins } from "./environmentItems.js";
import { boundUpstream, pinsIn } from "./environments.js";
import { classifyPromptDrift, classifyResourceDrift } from "./itemDrift.js";
import type { CatalogView, UpstreamState, VirtualServerState } from "./state.js";

/** What a promotion copies from its source environment: its tools (all, or only those named, in that order), its prompts, resources and templates. */
export interface PromotionSource {
  readonly tools: ReadonlyMap<string, EnvironmentPin>;
  readonly items: ItemPins;
}

/**
 * The pins a promotion from `from` copies, as the virtual server holds them at this point of the
 * stream: what its decision checks, and what every node's fold copies. Undefined when the virtual
 * server is not served in `from`, or lacks one of `only` there.
 */
export function promotionSource(vs: VirtualServerState, from: string, only?: readonly string[]): PromotionSource | undefined {
  const source = pinsIn(vs, from);
  if (!source) return undefined;
  if (only === undefined) return { tools: source, items: itemPinsIn(vs, from) };
  const tools = new Map<string, EnvironmentPin>();
  for (const name of only) {
    const pin = source.get(name);
    if (!pin) return undefined;
    tools.set(name, pin);
  }
  return { tools, items: itemPinsIn(vs, from) };
}

/**
 * How a promotion's event names what it copies: how many pins of each kind, and a SHA-256 over
 * each pin's kind, key (exposed name or URI), source (upstream and original name) and definition
 * hash, sorted. Small whatever the definitions weigh, enough for the history to tell two
 * promotions apart, and for a fold to check that it copies what was decided.
 */
export function promotionDigest({ tools, items }: PromotionSource): PromotedPins {
  const lines: string[] = [];
  const add = (kind: "tool" | ItemKind, key: string, pin: { upstream: string; hash: string }, original: string) => lines.push(JSON.stringify([kind, key, pin.upstream, original, pin.hash]));
  for (const [key, t] of tools) add("tool", key, t, t.tool);
  for (const [key, p] of items.prompts) add("prompt", key, p, p.prompt);
  for (const [key, r] of items.resources) add("resource", key, r, r.uri);
  for (const [key, t] of items.resourceTemplates) add("resource-template", key, t, t.uriTemplate);
  return {
    tools: tools.size,
    prompts: items.prompts.size,
    resources: items.resources.size,
    resourceTemplates: items.resourceTemplates.size,
    digest: `sha256:${createHash("sha256").update(lines.sort().join("\n")).digest("hex")}`,
  };
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
  const pins = pinsIn(vs, from);
  if (!pins) throw new ManifoldError("not_found", `virtual server '${vs.name}' has never been promoted to '${from}'`);
  const missing = only?.filter((name) => !pins.has(name)) ?? [];
  if (missing.length > 0) throw new ManifoldError("not_found", `virtual server '${vs.name}' has no tool named ${missing.map((n) => `'${n}'`).join(", ")} in '${from}'`);
  const source = promotionSource(vs, from, only)!;
  const differences: PromotionDifference[] = [];
  for (const pin of source.tools.values()) {
    const upstream = boundUpstream(target, pin.upstream);
    const current = catalog.upstream(upstream)?.tools.get(pin.tool);
    if (current?.hash === pin.hash) continue;
    differences.push({ exposedName: pin.exposedName, upstream, tool: pin.tool, ...classifyDrift(pin.definition, current?.definition) });
  }
  /** A pinned item against what the target's bound upstream reports now (its class and diff when they differ). */
  const differ = <D>(kind: ItemKind, key: string, pin: { upstream: string; hash: string }, original: string, current: (u: UpstreamState) => { hash: string; definition: D } | undefined, classify: (now: D | undefined) => Drift) => {
    const upstream = boundUpstream(target, pin.upstream);
    const state = catalog.upstream(upstream);
    const now = state && current(state);
    if (now?.hash !== pin.hash) differences.push({ exposedName: key, upstream, tool: original, kind, ...classify(now?.definition) });
  };
  const { items } = source;
  for (const [key, p] of items.prompts) differ("prompt", key, p, p.prompt, (u) => u.prompts.get(p.prompt), (now) => classifyPromptDrift(p.definition, now));
  for (const [key, r] of items.resources) differ("resource", key, r, r.uri, (u) => u.resources.get(r.uri), (now) => classifyResourceDrift(r.definition, now));
  for (const [key, t] of items.resourceTemplates) differ("resource-template", key, t, t.uriTemplate, (u) => u.resourceTemplates.get(t.uriTemplate), (now) => classifyResourceDrift(t.definition, now));
  return { source, differences };
}
