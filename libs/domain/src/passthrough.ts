import { DEFAULT_PASSTHROUGH_HEADERS, isReservedHeader, ManifoldError } from "@manifold/contracts";
import type { UpstreamState } from "./state.js";

/** Bounds of an agent's pass-through headers: per upstream entry, per header name and value. */
export const PASSTHROUGH_LIMITS = { upstreams: 32, headers: 16, nameLength: 64, valueLength: 8192 } as const;

/** A header name as RFC 9110 allows it (a token), within our length bound. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/;
/** Anything an HTTP field value may not hold: controls (NUL, CR, LF, …) and characters beyond one byte. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

const invalid = (message: string, upstream: string, header?: string) =>
  new ManifoldError("invalid_upstream_headers", message, { upstream, ...(header === undefined ? {} : { header }) });

/**
 * The header names (lower case) a call may carry to this upstream; none for stdio, and never one
 * the transport owns (`isReservedHeader`), even where a registration recorded before that check
 * names one. An upstream with per-consumer OAuth or token exchange always takes `authorization`:
 * the gateway puts the consumer's vault token or the exchanged token there (and never the agent's own).
 */
export function allowedPassthrough(upstream: Pick<UpstreamState, "transport" | "options">): ReadonlySet<string> {
  if (upstream.transport.type === "stdio") return new Set();
  const names = upstream.options.passthroughHeaders ?? DEFAULT_PASSTHROUGH_HEADERS;
  const allowed = new Set(names.filter((h) => !isReservedHeader(h)).map((h) => h.toLowerCase()));
  if (upstream.transport.auth !== undefined) allowed.add("authorization");
  return allowed;
}

/**
 * Checks one upstream's entry of an agent's pass-through headers: a flat map of allowed header
 * names to values that are valid in an HTTP header, within the bounds above. Errors name the
 * upstream and the header, never a value.
 */
export function checkPassthrough(upstream: string, entry: unknown, allowed: ReadonlySet<string>): Record<string, string> {
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw invalid(`pass-through headers for upstream '${upstream}' must be an object of header names to strings`, upstream);
  }
  const names = Object.keys(entry);
  if (names.length > PASSTHROUGH_LIMITS.headers) {
    throw invalid(`pass-through headers for upstream '${upstream}' name ${names.length} headers; at most ${PASSTHROUGH_LIMITS.headers} are allowed`, upstream);
  }
  const headers: Record<string, string> = {};
  for (const name of names) {
    if (!HEADER_NAME.test(name)) {
      throw invalid(`pass-through headers for upstream '${upstream}' hold a header name that is not a valid HTTP header name of at most ${PASSTHROUGH_LIMITS.nameLength} characters`, upstream);
    }
    const value = (entry as Record<string, unknown>)[name];
    if (typeof value !== "string" || value.length > PASSTHROUGH_LIMITS.valueLength || INVALID_VALUE.test(value)) {
      throw invalid(
        `pass-through header '${name}' for upstream '${upstream}' must be a string of at most ${PASSTHROUGH_LIMITS.valueLength} characters valid in an HTTP header (no control characters such as NUL, CR or LF)`,
        upstream,
        name,
      );
    }
    if (!allowed.has(name.toLowerCase())) {
      throw invalid(`header '${name}' may not be passed through to upstream '${upstream}' (allowed: ${[...allowed].join(", ") || "none"})`, upstream, name);
    }
    headers[name] = value;
  }
  return headers;
}
