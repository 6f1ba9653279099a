import { DEFAULT_ENVIRONMENT, ManifoldError, type DriftReview, type PinnedToolDefinition } from "@manifold/contracts";
import { classifyDrift, type Drift } from "./drift.js";
import { boundUpstream, pinsIn } from "./environments.js";
import type { CatalogView, VirtualServerState } from "./state.js";

export interface PendingDrift extends Drift {
  exposedName: string;
  /** The concrete upstream serving the tool in the environment. */
  upstream: string;
  tool: string;
  pinnedHash: string;
  /** null when the tool is gone from the upstream. */
  currentHash: string | null;
  serverVersion: string | undefined;
}

/**
 * The tools of a virtual server in an environment whose upstream there now reports a
 * definition other than the environment's pin, and that nobody has rejected yet. Derived
 * from the catalog, so it is the same on every node and follows each re-discovery (drift is
 * always measured from the pin, not from the previous discovery). An environment the
 * virtual server was never promoted to has none.
 */
export function pendingDrift(vs: VirtualServerState, catalog: CatalogView, environment = DEFAULT_ENVIRONMENT, only: { upstream?: string | undefined; exposedName?: string } = {}): PendingDrift[] {
  return [...driftingPins(vs, catalog, environment, only)].map(classified);
}

/** A pending drift before it is classified: the pinned and the current definition (absent when gone). */
export interface DriftingPin extends Omit<PendingDrift, keyof Drift> {
  pinned: PinnedToolDefinition;
  current: PinnedToolDefinition | undefined;
}

/**
 * `pendingDrift`'s tools, unclassified: classifying is the cost, so a page of them
 * (`GET …/drift`) classifies only the drift it shows (`classified`).
 */
export function* driftingPins(vs: VirtualServerState, catalog: CatalogView, environment = DEFAULT_ENVIRONMENT, only: { upstream?: string | undefined; exposedName?: string } = {}): Generator<DriftingPin> {
  const pins = pinsIn(vs, environment);
  if (!pins) return;
  const bindings = environment === DEFAULT_ENVIRONMENT ? undefined : catalog.environment(environment);
  const rejected = vs.rejected.get(environment);
  // A change of one upstream reads only its tools, a decision only its tool.
  const named = only.exposedName === undefined ? undefined : pins.get(only.exposedName);
  for (const pinned of only.exposedName === undefined ? pins.values() : named ? [named] : []) {
    const upstreamName = boundUpstream(bindings, pinned.upstream);
    if (only.upstream !== undefined && upstreamName !== only.upstream) continue;
    const upstream = catalog.upstream(upstreamName);
    if (!upstream?.serverInfo) continue;
    const current = upstream.tools.get(pinned.tool);
    const currentHash = current?.hash ?? null;
    if (currentHash === pinned.hash) continue;
    if (rejected?.has(pinned.exposedName) && rejected.get(pinned.exposedName) === currentHash) continue;
    yield {
      exposedName: pinned.exposedName,
      upstream: upstreamName,
      tool: pinned.tool,
      pinnedHash: pinned.hash,
      currentHash,
      serverVersion: upstream.serverInfo.version,
      pinned: pinned.definition,
      current: current?.definition,
    };
  }
}

/** A drifting pin with its class, reasons and diff. */
export function classified({ pinned, current, ...drift }: DriftingPin): PendingDrift {
  return { ...drift, ...classifyDrift(pinned, current) };
}

/**
 * Refuses a drift decision made on something other than what is pending now: a review of an
 * earlier definition (an upstream that reported a compatible change, then a breaking one, had the
 * breaking one pinned by the first one's accept).
 */
export function mustBeAsReviewed(review: DriftReview, drift: { currentHash: string | null }, what: string): void {
  if (review.hash !== undefined && review.hash !== drift.currentHash) {
    throw new ManifoldError("version_conflict", `${what} changed again since it was reviewed: review its pending change again`, { reviewedHash: review.hash, currentHash: drift.currentHash });
  }
}
