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
  if (environment !== DEFAULT_ENVIRONMENT && (!vs.environments.has(environment) || !vs.environmentItems.has(environment))) return [];
  const pins = itemPinsIn(vs, environment);
  const bindings = environment === DEFAULT_ENVIRONMENT ? undefined : catalog.environment(environment);
  const rejected = vs.rejected.get(environment);
  const pending: PendingItemDrift[] = [];
  const consider = (kind: ItemKind, key: string, logical: string, original: string, pinnedHash: string, current: { hash: string } | undefined, drift: () => Drift) => {
    const upstreamName = boundUpstream(bindings, logical);
    if (onlyUpstream !== undefined && upstreamName !== onlyUpstream) return;
    const upstream = catalog.upstream(upstreamName);
    if (!upstream?.serverInfo) return;
    const currentHash = current?.hash ?? null;
    if (currentHash === pinnedHash) return;
    if (rejected?.has(key) && rejected.get(key) === currentHash) return;
    pending.push({ kind, key, upstream: upstreamName, original, pinnedHash, currentHash, serverVersion: upstream.serverInfo.version, ...drift() });
  };
  const at = (logical: string) => catalog.upstream(boundUpstream(bindings, logical));
  for (const [key, p] of pins.prompts) {
    const current = at(p.upstream)?.prompts.get(p.prompt);
    consider("prompt", key, p.upstream, p.prompt, p.hash, current, () => classifyPromptDrift(p.definition, current?.definition));
  }
  for (const [key, r] of pins.resources) {
    const current = at(r.upstream)?.resources.get(r.uri);
    consider("resource", key, r.upstream, r.uri, r.hash, current, () => classifyResourceDrift(r.definition, current?.definition));
  }
  for (const [key, t] of pins.resourceTemplates) {
    const current = at(t.upstream)?.resourceTemplates.get(t.uriTemplate);
    consider("resource-template", key, t.upstream, t.uriTemplate, t.hash, current, () => classifyResourceDrift(t.definition, current?.definition));
  }
  return pending;
}

/** What the upstream serving a pending change reports now, if it still has it. */
export function currentItem(catalog: CatalogView, drift: Pick<PendingItemDrift, "kind" | "upstream" | "original">) {
  const upstream = catalog.upstream(drift.upstream);
  return drift.kind === "prompt" ? upstream?.prompts.get(drift.original) : drift.kind === "resource" ? upstream?.resources.get(drift.original) : upstream?.resourceTemplates.get(drift.original);
}
