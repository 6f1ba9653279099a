import { DEFAULT_PASSTHROUGH_HEADERS, ManifoldError } from "@manifold/contracts";
import type { UpstreamState } from "./state.js";

/** The header names (lower case) an agent may pass through to this upstream; none for stdio. */
export function allowedPassthrough(upstream: Pick<UpstreamState, "transport" | "options">): ReadonlySet<string> {
  if (upstream.transport.type === "stdio") return new Set();
  return new Set((upstream.options.passthroughHeaders ?? DEFAULT_PASSTHROUGH_HEADERS).map((h) => h.toLowerCase()));
}

/**
 * Checks one upstream's entry of an agent's pass-through headers: a flat map of allowed
 * header names to string values. Errors name the header, never its value.
 */
export function checkPassthrough(upstream: string, entry: unknown, allowed: ReadonlySet<string>): Record<string, string> {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new ManifoldError("invalid_request", `pass-through headers for upstream '${upstream}' must be an object of header names to strings`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(entry)) {
    // A value a header cannot carry (NUL, line breaks, other controls, beyond Latin-1) is refused here, naming the
    // header: passed on, the HTTP library would refuse it quoting the value, and the error would travel.
    if (!/^[A-Za-z0-9-]+$/.test(name) || typeof value !== "string" || /[^\t\x20-\x7e\x80-\xff]/.test(value)) {
      throw new ManifoldError("invalid_request", `pass-through header '${name}' for upstream '${upstream}' must be a header name with a single-line string value (value withheld)`);
    }
    if (!allowed.has(name.toLowerCase())) {
      throw new ManifoldError(
        "invalid_request",
        `header '${name}' may not be passed through to upstream '${upstream}' (allowed: ${[...allowed].join(", ") || "none"})`,
        { upstream, header: name },
      );
    }
    headers[name] = value;
  }
  return headers;
}
