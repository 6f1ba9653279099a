import { ManifoldError } from "@manifold/contracts";
import { allowedPassthrough, checkPassthrough, type CatalogProjection } from "@manifold/domain";

/**
 * Reads an agent's `X-Manifold-Upstream-Headers`: a JSON object keyed by upstream name whose
 * values are the headers meant for that upstream only. Every entry is checked against its
 * upstream's allow-list; errors name the upstream and header, never a value.
 */
export function parseUpstreamHeaders(raw: string | string[] | undefined, projection: CatalogProjection): Map<string, Record<string, string>> | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) throw new ManifoldError("invalid_request", "X-Manifold-Upstream-Headers may be sent only once");
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ManifoldError("invalid_request", "X-Manifold-Upstream-Headers is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ManifoldError("invalid_request", "X-Manifold-Upstream-Headers must be a JSON object keyed by upstream name");
  }
  const byUpstream = new Map<string, Record<string, string>>();
  for (const [name, entry] of Object.entries(parsed)) {
    const upstream = projection.upstream(name);
    if (!upstream) throw new ManifoldError("invalid_request", `X-Manifold-Upstream-Headers names upstream '${name}', which does not exist`);
    byUpstream.set(name, checkPassthrough(name, entry, allowedPassthrough(upstream)));
  }
  return byUpstream;
}
