import type { ItemKind } from "@manifold/contracts";
import type { Drift } from "./drift.js";
import { classifyPromptDrift, classifyResourceDrift } from "./itemDrift.js";
import type { CatalogView, VirtualServerState } from "./state.js";

export interface PendingItemDrift extends Drift {
  kind: ItemKind;
  /** What a decision names: the prompt's exposed name, or the exposed URI (template). */
  key: string;
  upstream: string;
  /** The upstream's own name (prompt) or URI (template). */
  original: string;
  pinnedHash: string;
  /** null when it is gone from the upstream. */
  currentHash: string | null;
  serverVersion: string | undefined;
}

/**
 * The prompts, resources and templates of a virtual server whose upstream now reports another
 * definition than the pin, and that nobody has rejected yet (derived, like `pendingDrift`).
 * They are pinned once for every environment, and measured against the selection's upstream.
 */
export function pendingItemDrift(vs: VirtualServerState, catalog: CatalogView): PendingItemDrift[] {
  const rejected = vs.rejected.get("default");
  const pending: PendingItemDrift[] = [];
  const consider = (kind: ItemKind, key: string, upstreamName: string, original: string, pinnedHash: string, current: { hash: string } | undefined, drift: () => Drift) => {
    const upstream = catalog.upstream(upstreamName);
    if (!upstream?.serverInfo) return;
    const currentHash = current?.hash ?? null;
    if (currentHash === pinnedHash) return;
    if (rejected?.has(key) && rejected.get(key) === currentHash) return;
    pending.push({ kind, key, upstream: upstreamName, original, pinnedHash, currentHash, serverVersion: upstream.serverInfo.version, ...drift() });
  };
  for (const [key, p] of vs.prompts) {
    const current = catalog.upstream(p.upstream)?.prompts.get(p.prompt);
    consider("prompt", key, p.upstream, p.prompt, p.hash, current, () => classifyPromptDrift(p.definition, current?.definition));
  }
  for (const [key, r] of vs.resources) {
    const current = catalog.upstream(r.upstream)?.resources.get(r.uri);
    consider("resource", key, r.upstream, r.uri, r.hash, current, () => classifyResourceDrift(r.definition, current?.definition));
  }
  for (const [key, t] of vs.resourceTemplates) {
    const current = catalog.upstream(t.upstream)?.resourceTemplates.get(t.uriTemplate);
    consider("resource-template", key, t.upstream, t.uriTemplate, t.hash, current, () => classifyResourceDrift(t.definition, current?.definition));
  }
  return pending;
}
