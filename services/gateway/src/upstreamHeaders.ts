import { ManifoldError, ResourceName } from "@manifold/contracts";
import { checkPassthrough, PASSTHROUGH_LIMITS } from "@manifold/domain";

const invalid = (message: string, data?: Record<string, unknown>) => new ManifoldError("invalid_upstream_headers", message, data);

/**
 * Reads an agent's `X-Manifold-Upstream-Headers` once, at the HTTP edge: a JSON object keyed by
 * upstream name whose values are the headers meant for that upstream only. `reachable` holds
 * the upstreams the caller's visible tools, prompts, resources and templates route to (`passthroughFor`) and the headers each allows: any other name
 * gets the same answer whether it exists elsewhere or not, so the header cannot map the registry.
 * Errors name the upstream and header, never a value; nothing reaches the bus.
 */
export function parseUpstreamHeaders(
  raw: string | string[] | undefined,
  reachable: ReadonlyMap<string, ReadonlySet<string>>,
  virtualServer: string,
): Map<string, Record<string, string>> | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw)) throw invalid("X-Manifold-Upstream-Headers may be sent only once");
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw invalid("X-Manifold-Upstream-Headers is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw invalid("X-Manifold-Upstream-Headers must be a JSON object keyed by upstream name");
  }
  const names = Object.keys(parsed);
  if (names.length > PASSTHROUGH_LIMITS.upstreams) throw invalid(`X-Manifold-Upstream-Headers names ${names.length} upstreams; at most ${PASSTHROUGH_LIMITS.upstreams} are allowed`);
  const byUpstream = new Map<string, Record<string, string>>();
  for (const name of names) {
    const allowed = reachable.get(name);
    if (!allowed) {
      // Only a well-formed name is echoed; either way the answer does not say whether it exists.
      const shown = ResourceName.safeParse(name).success ? `'${name}'` : "a name";
      throw invalid(`X-Manifold-Upstream-Headers names upstream ${shown}, which virtual server '${virtualServer}' does not route to for this caller`, {
        ...(shown === "a name" ? {} : { upstream: name }),
      });
    }
    byUpstream.set(name, checkPassthrough(name, (parsed as Record<string, unknown>)[name], allowed));
  }
  return byUpstream;
}
