import { classifyDrift, type Drift } from "./drift.js";
import type { CatalogView, VirtualServerState } from "./state.js";

export interface PendingDrift extends Drift {
  exposedName: string;
  upstream: string;
  tool: string;
  pinnedHash: string;
  /** null when the tool is gone from the upstream. */
  currentHash: string | null;
  serverVersion: string | undefined;
}

/**
 * The tools of a virtual server whose upstream now reports a definition other than the pinned
 * one, and that nobody has rejected yet. Derived from the catalog, so it is the same on every
 * node and follows each re-discovery (drift is always measured from the pin, not from the
 * previous discovery).
 */
export function pendingDrift(vs: VirtualServerState, catalog: CatalogView): PendingDrift[] {
  const pending: PendingDrift[] = [];
  for (const pinned of vs.tools.values()) {
    const upstream = catalog.upstream(pinned.upstream);
    if (!upstream?.serverInfo) continue;
    const current = upstream.tools.get(pinned.tool);
    const currentHash = current?.hash ?? null;
    if (currentHash === pinned.hash) continue;
    if (vs.rejected.has(pinned.exposedName) && vs.rejected.get(pinned.exposedName) === currentHash) continue;
    pending.push({
      exposedName: pinned.exposedName,
      upstream: pinned.upstream,
      tool: pinned.tool,
      pinnedHash: pinned.hash,
      currentHash,
      serverVersion: upstream.serverInfo.version,
      ...classifyDrift(pinned.definition, current?.definition),
    });
  }
  return pending;
}
