import { ManifoldError } from "./errors.js";

/**
 * Limits on JSON Manifold did not write (agents' requests, upstreams' results and tool lists,
 * admin bodies, bus messages). Nesting is what makes JSON dangerous to a JavaScript process:
 * `JSON.stringify` and every recursive walk overflow the stack somewhere past a few thousand
 * levels. These checks never recurse and never allocate per level, so they cannot overflow.
 * Sizes are bounded where the bytes arrive (`GATEWAY_BODY_LIMIT_BYTES`, the registry's 1 MiB
 * body limit, the NATS servers' `max_payload`).
 */
export const JsonLimits = {
  /** Deepest nesting of objects and arrays in an agent's request body or an admin body. */
  requestDepth: 64,
  /** Deepest nesting in an upstream's tool result or tool list (its schemas), and in a bus message parsed from one. */
  resultDepth: 128,
} as const;

/** Sub-reason (`data.reason`) of an `upstream_error` for a result nested past `JsonLimits.resultDepth`. */
export const RESULT_TOO_DEEP = "result_too_deep";
/** Sub-reason (`data.reason`) of an `upstream_error` for a 2026-07-28 upstream's `input_required` result (multi round-trip), not relayed yet. */
export const INPUT_REQUIRED = "input_required";
/** Sub-reason (`data.reason`) of an `upstream_error` for an answer that breaks the MCP schema (that request fails; the upstream's session is kept). */
export const INVALID_RESULT = "invalid_result";

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;

/**
 * Whether JSON text nests objects and arrays deeper than `maxDepth`, read in one pass over the
 * characters (strings are skipped with `indexOf`). Text that is not JSON gets some answer; the
 * parser that runs next rejects it anyway.
 */
export function jsonTextTooDeep(text: string, maxDepth: number): boolean {
  // Each level needs at least one opening character.
  if (text.length <= maxDepth) return false;
  let depth = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip to the closing quote: one preceded by an even number of backslashes.
      let end = text.indexOf('"', i + 1);
      while (end !== -1) {
        let slashes = 0;
        while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) return false;
      i = end;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return false;
}

/**
 * Whether a parsed value nests objects and arrays deeper than `maxDepth`: an explicit stack,
 * never recursion, stopping at the first level past the limit.
 */
export function jsonValueTooDeep(value: unknown, maxDepth: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const values: object[] = [value];
  const depths: number[] = [1];
  while (values.length > 0) {
    const current = values.pop()!;
    const depth = depths.pop()!;
    if (depth > maxDepth) return true;
    const children = Array.isArray(current) ? current : Object.values(current);
    for (const child of children) {
      if (typeof child === "object" && child !== null) {
        values.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/**
 * The refusal of a request body (an agent's or an admin's) that nests deeper than `maxDepth`,
 * measured on the raw text before anything parses it; undefined when it does not.
 */
export function bodyTooDeep(text: string, maxDepth: number = JsonLimits.requestDepth): ManifoldError | undefined {
  if (!jsonTextTooDeep(text, maxDepth)) return undefined;
  return new ManifoldError("json_too_deep", `the JSON body nests objects and arrays deeper than ${maxDepth} levels`, { maxDepth });
}

/** A JSON object (not an array, not null): what every walk over hostile JSON checks before reading keys. */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
