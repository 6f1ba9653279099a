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
/**
 * Sub-reason (`data.reason`) of an `upstream_unavailable` for a call whose own connection the
 * upstream (or a proxy, a firewall) closed or reset after it was sent, unanswered: that call's
 * failure, counted against its caller's circuit of the tool; the upstream's session is kept.
 */
export const CONNECTION_CLOSED = "connection_closed";

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;
const COLON = 58;
const MINUS = 45;
const DIGIT_0 = 48;
const DIGIT_9 = 57;
const DOT = 46;
const PLUS = 43;
const LOWER_E = 101;
const UPPER_E = 69;

/** What `scanJsonText` returns for text nested past its depth limit. */
export const JSON_TOO_DEEP = -1;
/** What `scanJsonText` returns for text holding more object keys than its key limit. */
export const JSON_TOO_WIDE = -2;
/** What `scanJsonText` returns, asked to look at numbers, for text within its limits that holds a number `JSON.parse` reads as ±Infinity. */
export const JSON_NUMBER_OUT_OF_RANGE = -3;
/**
 * Digits a number without an exponent may have before `Number` needs asking: the largest double is
 * ~1.8e308 (309 digits), so a shorter one is finite. A number with an exponent is asked too.
 */
const FINITE_DIGITS = 308;

/**
 * JSON text measured in one pass over its characters (strings are skipped with `indexOf`): the
 * number of object keys it holds (each is the one colon outside strings of an object member),
 * or `JSON_TOO_DEEP` / `JSON_TOO_WIDE` at the first character past `maxDepth` levels of objects
 * and arrays or `maxKeys` keys. Nothing is allocated. Text that is not JSON gets some answer;
 * the parser that runs next rejects it anyway.
 */
export function scanJsonText(text: string, maxDepth: number, maxKeys: number = Infinity, numbers = false): number {
  let depth = 0;
  let keys = 0;
  let outOfRange = false;
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
    } else if (numbers && (c === MINUS || (c >= DIGIT_0 && c <= DIGIT_9))) {
      // Outside strings, a digit or minus starts a number: stepped over whole (`numberEnd`).
      const end = numberEnd(text, i);
      if (end < 0) outOfRange = true;
      i = Math.abs(end) - 1;
    }
  }
  return outOfRange ? JSON_NUMBER_OUT_OF_RANGE : keys;
}

/**
 * Where the number starting at `start` in JSON text ends (exclusive), negated when `JSON.parse`
 * reads it as ±Infinity. Only a number that may pass the largest double (an exponent, or more
 * than `FINITE_DIGITS` characters) is read, with `Number`, which reads a JSON number as
 * `JSON.parse` does; nothing is allocated for any other.
 */
function numberEnd(text: string, start: number): number {
  let at = start + 1;
  let exponent = false;
  for (;;) {
    const c = text.charCodeAt(at);
    if (c === LOWER_E || c === UPPER_E) exponent = true;
    else if (!(c >= DIGIT_0 && c <= DIGIT_9) && c !== DOT && c !== PLUS && c !== MINUS) break;
    at++;
  }
  if ((exponent || at - start > FINITE_DIGITS) && Math.abs(Number(text.slice(start, at))) === Infinity) return -at;
  return at;
}

/**
 * The JSON Pointer (RFC 6901) of the first number in `value` that is not finite: where `JSON.parse`
 * read a number no double holds (1e400 as Infinity). An explicit stack, never recursion; run only on
 * a body already found to hold one (`scanJsonText`), never on every body.
 */
export function nonFiniteNumberPath(value: unknown): string | undefined {
  const values: unknown[] = [value];
  const paths: string[] = [""];
  while (values.length > 0) {
    const current = values.pop();
    const path = paths.pop()!;
    if (typeof current === "number" && !Number.isFinite(current)) return path;
    if (typeof current !== "object" || current === null) continue;
    // Pushed last to first, so the first member in the text is found first.
    const entries = Object.entries(current);
    for (let i = entries.length - 1; i >= 0; i--) {
      values.push(entries[i]![1]);
      paths.push(`${path}/${entries[i]![0].replaceAll("~", "~0").replaceAll("/", "~1")}`);
    }
  }
  return undefined;
}

/**
 * Whether `value` holds a number that is not finite (what `JSON.parse` makes of 1e400), anywhere:
 * the walk `nonFiniteNumberPath` makes, without its paths (no string built, no entry array), for
 * what was parsed before the connector saw its text (the SDK client's messages). An explicit
 * stack, never recursion; members are read with `for…in`, which on what `JSON.parse` made are its own.
 */
export function holdsNonFiniteNumber(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return typeof value === "number" && !Number.isFinite(value);
  const values: object[] = [value];
  while (values.length > 0) {
    const current = values.pop()!;
    if (Array.isArray(current)) {
      for (let i = 0; i < current.length; i++) if (notFinite(current[i], values)) return true;
    } else {
      for (const key in current) if (notFinite((current as Record<string, unknown>)[key], values)) return true;
    }
  }
  return false;
}

/** `holdsNonFiniteNumber`'s look at one member: true for a number that is not finite; an object or array is put on `values`. */
function notFinite(child: unknown, values: object[]): boolean {
  if (typeof child === "number") return !Number.isFinite(child);
  if (typeof child === "object" && child !== null) values.push(child);
  return false;
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
  const keys = scanJsonText(text, limits.maxDepth, limits.maxKeys, true);
  if (keys === JSON_NUMBER_OUT_OF_RANGE) return numberOutOfRange(text);
  if (keys === JSON_TOO_DEEP) return new ManifoldError("json_too_deep", `the JSON body nests objects and arrays deeper than ${limits.maxDepth} levels`, { maxDepth: limits.maxDepth });
  if (keys === JSON_TOO_WIDE) return new ManifoldError("json_too_wide", `the JSON body holds more than ${limits.maxKeys} object keys`, { maxKeys: limits.maxKeys });
  return keys;
}

/** A digit before an exponent mark: JSON text shorter than `FINITE_DIGITS` holds a number past the doubles only so. */
const EXPONENT = /[0-9][eE]/;

/**
 * An upstream's answer (or notification) text and `JSON.parse`'s reading of it, measured in one
 * pass: `JSON_TOO_DEEP` past `maxDepth`, else the JSON Pointer of a number it read as ±Infinity
 * (`nonFiniteNumberPath`), else undefined. Text of at most `maxDepth` characters cannot nest that
 * deep (nor a number of over `FINITE_DIGITS` digits) and is scanned only when it holds an exponent (a regular expression over a ~100-character
 * answer); longer text was scanned for its nesting anyway.
 */
export function unreadableNumbersOrDepth(text: string, value: unknown, maxDepth: number): typeof JSON_TOO_DEEP | string | undefined {
  if (text.length <= Math.min(maxDepth, FINITE_DIGITS) && !EXPONENT.test(text)) return undefined;
  const scanned = scanJsonText(text, maxDepth, Infinity, true);
  if (scanned === JSON_TOO_DEEP) return JSON_TOO_DEEP;
  return scanned === JSON_NUMBER_OUT_OF_RANGE ? (nonFiniteNumberPath(value) ?? "") : undefined;
}

/**
 * The refusal of a body holding a number `JSON.parse` reads as ±Infinity, naming where (never the
 * number): passed on, it would reach the upstream as `null` (`JSON.stringify` of Infinity), a value
 * the agent never sent. Text that is not JSON is left to the parser (0 keys: it refuses it anyway).
 */
function numberOutOfRange(text: string): number | ManifoldError {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 0;
  }
  const path = nonFiniteNumberPath(body) ?? "";
  return new ManifoldError("json_number_out_of_range", `the JSON body holds a number no double can hold (it would read as Infinity) at '${path}'`, { path });
}

/** A JSON object (not an array, not null): what every walk over hostile JSON checks before reading keys. */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
