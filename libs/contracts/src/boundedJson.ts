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
  /**
   * Object keys in an agent's request body, all its messages and `_meta` included: each costs a
   * parse and every SDK schema walk over it, and a ping of ~90,000 keys (~1 MB) held a gateway's
   * event loop 0.6–1.1 s for every tenant (gatewayWideBodies.e2e).
   */
  requestKeys: 10_000,
  /** Object keys in an admin body: a whole catalog's import (every pinned tool's schemas) holds more than an agent's request. */
  adminKeys: 200_000,
  /** Deepest nesting in an upstream's tool result or tool list (its schemas), and in a bus message parsed from one. */
  resultDepth: 128,
} as const;

/** Sub-reason (`data.reason`) of an `upstream_error` for a result nested past `JsonLimits.resultDepth`. */
export const RESULT_TOO_DEEP = "result_too_deep";
/** Sub-reason (`data.reason`) of an `upstream_error` for a 2026-07-28 upstream's `input_required` result (multi round-trip), not relayed yet. */
export const INPUT_REQUIRED = "input_required";
/** Sub-reason (`data.reason`) of an `upstream_error` for an answer that breaks the MCP schema (that request fails; the upstream's session is kept). */
export const INVALID_RESULT = "invalid_result";
/**
 * Sub-reason (`data.reason`) of an `upstream_error` for a call whose SSE answer ended without the
 * call's answer: that call fails; the upstream's session is kept and no breaker counts it.
 */
export const STREAM_ENDED = "stream_ended";

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;
const COLON = 58;

/** What `scanJsonText` returns for text nested past its depth limit. */
export const JSON_TOO_DEEP = -1;
/** What `scanJsonText` returns for text holding more object keys than its key limit. */
export const JSON_TOO_WIDE = -2;

/**
 * JSON text measured in one pass over its characters (strings are skipped with `indexOf`): the
 * number of object keys it holds (each is the one colon outside strings of an object member),
 * or `JSON_TOO_DEEP` / `JSON_TOO_WIDE` at the first character past `maxDepth` levels of objects
 * and arrays or `maxKeys` keys. Nothing is allocated. Text that is not JSON gets some answer;
 * the parser that runs next rejects it anyway.
 */
export function scanJsonText(text: string, maxDepth: number, maxKeys: number = Infinity): number {
  let depth = 0;
  let keys = 0;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = jsonStringEnd(text, i);
      if (end === -1) return keys;
      i = end;
    } else if (c === COLON) {
      if (++keys > maxKeys) return JSON_TOO_WIDE;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return JSON_TOO_DEEP;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
    }
  }
  return keys;
}

/**
 * Where the JSON string opening at `start` (a quote) closes: the next quote preceded by an even
 * number of backslashes, found with `indexOf` (no pass over the string's characters); -1 when none does.
 */
export function jsonStringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  while (end !== -1) {
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
  return -1;
}

/** JSON's whitespace: space, tab, line feed, carriage return. */
const SPACE = new Set([32, 9, 10, 13]);
/** What may follow a number, `true`, `false` or `null`. */
const ENDS_LITERAL = new Set([44, CLOSE_BRACE, CLOSE_BRACKET, ...SPACE]);

/** Where the whitespace from `at` in JSON text ends. */
export function jsonSpaceEnd(text: string, at: number): number {
  while (SPACE.has(text.charCodeAt(at))) at++;
  return at;
}

/**
 * Where the value starting at `start` in valid JSON text ends (exclusive): one pass over what lies
 * outside its strings, which are skipped with `indexOf` (`jsonStringEnd`).
 */
export function jsonValueEnd(text: string, start: number): number {
  const first = text.charCodeAt(start);
  if (first === QUOTE) return jsonStringEnd(text, start) + 1;
  if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
    let at = start;
    while (at < text.length && !ENDS_LITERAL.has(text.charCodeAt(at))) at++;
    return at;
  }
  let depth = 0;
  for (let at = start; at < text.length; at++) {
    const c = text.charCodeAt(at);
    if (c === QUOTE) {
      at = jsonStringEnd(text, at);
      if (at === -1) return text.length;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return at + 1;
  }
  return text.length;
}

/** Whether JSON text nests objects and arrays deeper than `maxDepth` (`scanJsonText`, keys not bounded). */
export function jsonTextTooDeep(text: string, maxDepth: number): boolean {
  // Each level needs at least one opening character.
  return text.length > maxDepth && scanJsonText(text, maxDepth) === JSON_TOO_DEEP;
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

/** What a request body may hold, measured on its raw text before anything parses it. */
export interface BodyLimits {
  readonly maxDepth: number;
  readonly maxKeys: number;
}
export const AgentBodyLimits: BodyLimits = Object.freeze({ maxDepth: JsonLimits.requestDepth, maxKeys: JsonLimits.requestKeys });
export const AdminBodyLimits: BodyLimits = Object.freeze({ maxDepth: JsonLimits.requestDepth, maxKeys: JsonLimits.adminKeys });

/**
 * A request body (an agent's or an admin's) measured on its raw text in one pass: the object keys
 * it holds, or its refusal when it nests deeper than `maxDepth` (`json_too_deep`) or holds more
 * than `maxKeys` keys (`json_too_wide`), each naming its limit.
 */
export function measureBody(text: string, limits: BodyLimits): number | ManifoldError {
  const keys = scanJsonText(text, limits.maxDepth, limits.maxKeys);
  if (keys === JSON_TOO_DEEP) return new ManifoldError("json_too_deep", `the JSON body nests objects and arrays deeper than ${limits.maxDepth} levels`, { maxDepth: limits.maxDepth });
  if (keys === JSON_TOO_WIDE) return new ManifoldError("json_too_wide", `the JSON body holds more than ${limits.maxKeys} object keys`, { maxKeys: limits.maxKeys });
  return keys;
}

/** A JSON object (not an array, not null): what every walk over hostile JSON checks before reading keys. */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
