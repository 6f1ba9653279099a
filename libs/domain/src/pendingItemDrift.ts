import { DEFAULT_ENVIRONMENT, type ItemKind } from "@manifold/contracts";
import { boundUpstream } from "./environments.js";
import { itemPinsIn } from "./environmentItems.js";
import type { Drift } from "./drift.js";
import { classifyPromptDrift, classifyResourceDrift } from "./itemDrift.js";
import type { CatalogView, VirtualServerState } from "./state.js";

export interface PendingItemDrift extends Drift {
  kind: ItemKind;
  /** What a decision names: the prompt's exposed name, or the exposed URI (template). */
  key: string;
  /** The concrete upstream serving it in the environment. */
  upstream: string;
  /** The upstream's own name (prompt) or URI (template). */
  original: string;
  pinnedHash: string;
  /** null when it is gone from the upstream. */
  currentHash: string | null;
  serverVersion: string | undefined;
}

/**
 * The prompts, resources and templates of a virtual server in an environment whose upstream there
 * now reports another definition than the environment's pin, and that nobody has rejected yet
 * (derived, like `pendingDrift`). An environment that serves the selection's items (promoted
 * before promotion covered them) has none of its own: they are reviewed in the default one.
 */
export function pendingItemDrift(vs: VirtualServerState, catalog: CatalogView, environment = DEFAULT_ENVIRONMENT, onlyUpstream?: string): PendingItemDrift[] {
  return [...driftingItems(vs, catalog, environment, onlyUpstream)].map(classifiedItem);
}

/** A pending item drift before it is classified: `classify` computes its class, reasons and diff. */
export interface DriftingItem extends Omit<PendingItemDrift, keyof Drift> {
  classify(): Drift;
}

/**
 * `pendingItemDrift`'s items, unclassified: classifying is the cost, so a page of them
 * (`GET …/drift/items`) classifies only the drift it shows (`classifiedItem`), and a decision none.
 */
export function* driftingItems(vs: VirtualServerState, catalog: CatalogView, environment = DEFAULT_ENVIRONMENT, onlyUpstream?: string): Generator<DriftingItem> {
  if (environment !== DEFAULT_ENVIRONMENT && (!vs.environments.has(environment) || !vs.environmentItems.has(environment))) return;
  const pins = itemPinsIn(vs, environment);
  const bindings = environment === DEFAULT_ENVIRONMENT ? undefined : catalog.environment(environment);
  const rejected = vs.rejected.get(environment);
  const drifting = (kind: ItemKind, key: string, logical: string, original: string, pinnedHash: string, current: { hash: string } | undefined, classify: () => Drift): DriftingItem | undefined => {
    const upstreamName = boundUpstream(bindings, logical);
    if (onlyUpstream !== undefined && upstreamName !== onlyUpstream) return undefined;
    const upstream = catalog.upstream(upstreamName);
    if (!upstream?.serverInfo) return undefined;
    const currentHash = current?.hash ?? null;
    if (currentHash === pinnedHash) return undefined;
    if (rejected?.has(key) && rejected.get(key) === currentHash) return undefined;
    return { kind, key, upstream: upstreamName, original, pinnedHash, currentHash, serverVersion: upstream.serverInfo.version, classify };
  };
  const at = (logical: string) => catalog.upstream(boundUpstream(bindings, logical));
  for (const [key, p] of pins.prompts) {
    const current = at(p.upstream)?.prompts.get(p.prompt);
    const drift = drifting("prompt", key, p.upstream, p.prompt, p.hash, current, () => classifyPromptDrift(p.definition, current?.definition));
    if (drift) yield drift;
  }
  for (const [key, r] of pins.resources) {
    const current = at(r.upstream)?.resources.get(r.uri);
    const drift = drifting("resource", key, r.upstream, r.uri, r.hash, current, () => classifyResourceDrift(r.definition, current?.definition));
    if (drift) yield drift;
  }
  for (const [key, t] of pins.resourceTemplates) {
    const current = at(t.upstream)?.resourceTemplates.get(t.uriTemplate);
    const drift = drifting("resource-template", key, t.upstream, t.uriTemplate, t.hash, current, () => classifyResourceDrift(t.definition, current?.definition));
    if (drift) yield drift;
  }
}

/** A drifting item with its class, reasons and diff. */
export function classifiedItem({ classify, ...drift }: DriftingItem): PendingItemDrift {
  return { ...drift, ...classify() };
}

/** What the upstream serving a pending change reports now, if it still has it. */
export function currentItem(catalog: CatalogView, drift: Pick<PendingItemDrift, "kind" | "upstream" | "original">) {
  const upstream = catalog.upstream(drift.upstream);
  return drift.kind === "prompt" ? upstream?.prompts.get(drift.original) : drift.kind === "resource" ? upstream?.resources.get(drift.original) : upstream?.resourceTemplates.get(drift.original);
}
