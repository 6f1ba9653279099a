import { DEFAULT_ENVIRONMENT, EventType, type ItemRepin, type NewEvent, type ToolRepin } from "@manifold/contracts";
import { pendingDrift } from "./pendingDrift.js";
import { currentItem, pendingItemDrift } from "./pendingItemDrift.js";
import type { CatalogView, VirtualServerState } from "./state.js";
import { newEvent } from "./newEvent.js";

/**
 * The `auto-compatible` policy's adoption: every compatible change pending in the virtual server
 * (only one upstream's, when named), in every environment it is served in, re-pinned to what the
 * upstream reports as decided. One event per environment and kind, more only when one would pass
 * `maxEventBytes`: an event per re-pin made one change of a 1,000-tool upstream that ten such
 * virtual servers select 10,000 events, each copying its virtual server's pins on every node
 * (514 ms of fold a node). Under any other policy, or for any other change, nothing.
 */
export function adoptCompatible(vs: VirtualServerState, catalog: CatalogView, upstream?: string, maxEventBytes?: number): NewEvent[] {
  if (vs.driftPolicy !== "auto-compatible") return [];
  const events: NewEvent[] = [];
  for (const environment of [DEFAULT_ENVIRONMENT, ...vs.environments.keys()]) {
    const where = environment === DEFAULT_ENVIRONMENT ? {} : { environment };
    const tools: ToolRepin[] = [];
    for (const drift of pendingDrift(vs, catalog, environment, { upstream })) {
      const current = drift.classification === "compatible" ? catalog.upstream(drift.upstream)?.tools.get(drift.tool) : undefined;
      if (current) tools.push({ exposedName: drift.exposedName, hash: current.hash, upstream: drift.upstream });
    }
    const items: ItemRepin[] = [];
    for (const drift of pendingItemDrift(vs, catalog, environment, upstream)) {
      const current = drift.classification === "compatible" ? currentItem(catalog, drift) : undefined;
      if (current) items.push({ kind: drift.kind, key: drift.key, hash: current.hash, upstream: drift.upstream });
    }
    for (const run of runsWithin(tools, maxEventBytes)) events.push(newEvent(EventType.virtualServerToolsRepinned, { name: vs.name, ...where, tools: run }));
    for (const run of runsWithin(items, maxEventBytes)) events.push(newEvent(EventType.virtualServerItemsRepinned, { name: vs.name, ...where, items: run }));
  }
  return events;
}

/** Consecutive runs of the entries whose JSON takes at most `maxBytes` a run (an entry larger than that goes alone). */
export function runsWithin<T>(entries: readonly T[], maxBytes = Infinity): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (run.length > 0 && bytes + size > maxBytes) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(entry);
    bytes += size;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
