import type { Logger } from "@manifold/telemetry";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { ManifoldError, cutText } from "@manifold/contracts";
import { RE2JS } from "re2js";
import { canonicalJson } from "./canonicalJson.js";

export type Validator = ValidateFunction | null;

/**
 * Schema patterns (`pattern`, `patternProperties`, `propertyNames`) run on RE2 (re2js), in time
 * linear in the string: the schema is an upstream's, the string any granted agent's, and the
 * check runs on the event loop every tenant shares (`^(a+)+$` against 40 a's and a "!" held a
 * backtracking engine for hours). A pattern RE2 cannot run (backreferences, lookaround) makes its
 * schema not compile: logged, not enforced here, as any schema that does not compile.
 */
const linearRegExp = Object.assign(
  (pattern: string) => {
    // RE2's compile runs on the shared loop once per pin and replica, in time that grows with the
    // text: one pattern of 10,000 alternatives (59 KB) held it 1.9 s, 50,000 (339 KB) 5.5 s, and a
    // schema may hold hundreds of patterns (helper-197). Ajv compiles a schema synchronously, so
    // what `compiled` grants one compile is what its patterns spend.
    patternCharsLeft -= pattern.length;
    if (patternCharsLeft < 0) throw new Error(`patterns longer than ${MAX_PATTERN_CHARS} characters in all`);
    return RE2JS.compile(re2Escapes(pattern));
  },
  { code: "re2js" },
);
/** The most characters a schema's patterns may hold together to be compiled (logged, not enforced, past it). */
export const MAX_PATTERN_CHARS = 2_048;
let patternCharsLeft = MAX_PATTERN_CHARS;

/** ECMAScript's `\uXXXX` and `\u{X…}` escapes in RE2's spelling, `\x{X…}`; every other escape is copied as it is. */
function re2Escapes(pattern: string): string {
  if (!pattern.includes("\\u")) return pattern;
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== "\\") {
      out += pattern[i];
      continue;
    }
    const code = /^u(?:([0-9a-fA-F]{4})|\{([0-9a-fA-F]{1,6})\})/.exec(pattern.slice(i + 1, i + 10));
    if (code) {
      out += `\\x{${code[1] ?? code[2]}}`;
      i += code[0].length;
    } else {
      out += pattern.slice(i, i + 2);
      i++;
    }
  }
  return out;
}

/**
 * `uniqueItems` by each item's canonical JSON in a set: linear in the array. Ajv compares every
 * pair of items whose type it cannot hash (objects, or items of no declared type), 5·10⁹
 * comparisons for 100,000 of them in a 1 MiB body.
 */
function uniqueByValue(wanted: boolean, items: unknown[]): boolean {
  if (!wanted || new Set(items.map(canonicalJson)).size === items.length) return true;
  uniqueByValue.errors = [{ keyword: "uniqueItems", message: "must NOT have duplicate items", params: {} }] as Partial<ErrorObject>[];
  return false;
}
uniqueByValue.errors = [] as Partial<ErrorObject>[];
const uniqueItems = { keyword: "uniqueItems", type: "array" as const, schemaType: "boolean" as const, errors: true, validate: uniqueByValue };

/**
 * `enum` looked up by canonical JSON in a set built once per pin: a call costs its value's size, not
 * the list's. Ajv compared the value with every allowed one on each call, on the event loop every
 * tenant shares: an upstream's 100,000 values (1.4 MB, 3 nodes under the bound below) cost ~1-4 ms
 * a call, so a few bytes of an agent's arguments bought milliseconds of everyone's time.
 */
function allowedValues(values: unknown[]): CheckFunction {
  // Strings, numbers, booleans and null as they are (a Set's equality is JSON's for them), objects
  // and arrays by their canonical JSON: a call naming a string pays no serialisation.
  const isPlain = (value: unknown) => value === null || typeof value !== "object";
  const plain = new Set(values.filter(isPlain));
  const structured = new Set(values.filter((value) => !isPlain(value)).map(canonicalJson));
  const validate: CheckFunction = (data) => {
    if (isPlain(data) ? plain.has(data) : structured.size > 0 && structured.has(canonicalJson(data))) return true;
    validate.errors = [{ keyword: "enum", message: "must be equal to one of the allowed values", params: {} }];
    return false;
  };
  return validate;
}
type CheckFunction = ((data: unknown) => boolean) & { errors?: Partial<ErrorObject>[] };
const enumKeyword = { keyword: "enum", schemaType: "array" as const, errors: true, compile: allowedValues };

/**
 * `dependentRequired` checked by a loop over its names: linear in them. Ajv built the check of one
 * property's names as a single nested expression, in time quadratic in them while compiling on the
 * shared event loop (one array is 1 node under the bound below: 1,000 names, 7 KB, held it 2.0 s;
 * 10,000 names 89 s, then overflowed the stack). The first missing name is reported, as Ajv's was.
 */
function dependentNames(names: Record<string, unknown>, data: Record<string, unknown>): boolean {
  for (const [property, needed] of Object.entries(names)) {
    if (!Object.hasOwn(data, property) || !Array.isArray(needed)) continue;
    const missing = needed.find((name) => typeof name === "string" && !Object.hasOwn(data, name)) as string | undefined;
    if (missing === undefined) continue;
    dependentNames.errors = [{ keyword: "dependentRequired", message: `must have property ${missing} when property ${property} is present`, params: { property, missingProperty: missing } }] as Partial<ErrorObject>[];
    return false;
  }
  return true;
}
dependentNames.errors = [] as Partial<ErrorObject>[];
const dependentRequired = { keyword: "dependentRequired", type: "object" as const, schemaType: "object" as const, errors: true, validate: dependentNames };
/** Draft 7's `dependencies` as what 2020-12 split it into: its lists through the loop above, its schemas as `dependentSchemas`. */
const dependencies = {
  keyword: "dependencies",
  type: "object" as const,
  schemaType: "object" as const,
  macro: (schema: Record<string, unknown>) => {
    const lists = Object.entries(schema).filter(([, value]) => Array.isArray(value));
    const schemas = Object.entries(schema).filter(([, value]) => !Array.isArray(value));
    return { dependentRequired: Object.fromEntries(lists), dependentSchemas: Object.fromEntries(schemas) };
  },
};

/**
 * The most objects and arrays a pinned schema may hold to be compiled. Compiling runs on the event
 * loop every tenant shares, once per pin and replica, and Ajv's compile time grows with the schema
 * (~0.1-0.5 ms a property here; a ~1 MiB schema held the loop 4.3 s); past ~1,600 properties the
 * function it generates overflows V8's stack on every call. A larger schema is not enforced (logged
 * once), as one that does not compile: checking an upstream's calls against its own schema is a
 * courtesy to the agent, not a bound that protects anyone else.
 */
export const MAX_COMPILED_SCHEMA_NODES = 512;

/** Whether the schema holds more than `limit` objects and arrays: iterative, and it stops at the limit. */
function nodesOver(schema: unknown, limit: number): boolean {
  const pending: unknown[] = [schema];
  let nodes = 0;
  while (pending.length > 0) {
    const value = pending.pop();
    if (++nodes > limit) return true;
    for (const child of Array.isArray(value) ? value : Object.values(value as object)) if (typeof child === "object" && child !== null) pending.push(child);
  }
  return false;
}

/**
 * Checks tool arguments against the pinned `inputSchema` before anything goes upstream.
 * A validator is compiled once per pinned definition (keyed by its hash) and reused by
 * every call; a schema that cannot be compiled is logged once and not enforced, so an odd
 * upstream schema never makes a tool uncallable.
 */
export class ArgumentValidator {
  // The first error only: with all of them, 500,000 wrong items in a 1 MB argument held the event loop
  // ~950 ms for every tenant and were answered as a 34 MB error (gatewayBoundedWork.e2e).
  // `logger: false`: Ajv writes a schema that fails to compile to the console with all its generated
  // code (an upstream's 1,600-property schema overflows V8's stack there: megabytes on stderr); the
  // failure is logged once, below, through pino.
  // `optimize: false`: the optimising pass over the generated code took more time than it saved a
  // first call (10 against 1.7 ms to compile a 10-property schema, 188 against 75 ms for 400; the
  // validation itself as fast either way, measured alone).
  readonly #ajv = new Ajv2020({ strict: false, allErrors: false, validateSchema: false, logger: false, code: { regExp: linearRegExp, optimize: false } });
  readonly #compiled = new Map<string, Validator>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
    (addFormats as unknown as (ajv: Ajv2020) => void)(this.#ajv);
    this.#ajv.removeKeyword("uniqueItems").addKeyword(uniqueItems);
    this.#ajv.removeKeyword("dependentRequired").addKeyword(dependentRequired).removeKeyword("dependencies").addKeyword(dependencies);
    this.#ajv.removeKeyword("enum").addKeyword(enumKeyword);
  }

  /**
   * The validator of a pinned schema (`which` of the definition `hash`), compiled on its first use
   * and kept; null for a schema that does not compile (logged once, not enforced). The output
   * schema's (`outputSchemaCheck.ts`) shares this engine and its bounds: RE2 patterns, linear
   * `uniqueItems`, the first error only.
   */
  compiled(hash: string, schema: Record<string, unknown>, tool: string, which: "input" | "output"): Validator {
    const key = which === "input" ? hash : `${hash}#output`;
    let validate = this.#compiled.get(key);
    if (validate === undefined) {
      if (nodesOver(schema, MAX_COMPILED_SCHEMA_NODES)) {
        this.#logger.warn({ tool, hash, nodes: `>${MAX_COMPILED_SCHEMA_NODES}` }, `${which} schema too large to compile on the event loop; ${which === "input" ? "arguments are not validated" : "results are not checked"}`);
        this.#compiled.set(key, null);
        return null;
      }
      try {
        patternCharsLeft = MAX_PATTERN_CHARS;
        validate = this.#ajv.compile(schema);
      } catch (error) {
        this.#logger.warn({ tool, hash, err: error }, which === "input" ? "input schema does not compile; arguments are not validated" : "output schema does not compile; results are not checked");
        validate = null;
      }
      this.#compiled.set(key, validate);
    }
    return validate;
  }

  /**
   * Throws `invalid_arguments` listing what is wrong with the arguments: -32602 to a 2025-06-18 or
   * older agent, a tool execution error (`invalidArgumentsResult`) from 2025-11-25 on (`serveToolCall`).
   */
  check(hash: string, schema: Record<string, unknown>, tool: string, args: unknown): void {
    const validate = this.compiled(hash, schema, tool, "input");
    if (!validate || validate(args ?? {})) return;
    throw new ManifoldError("invalid_arguments", `invalid arguments for tool '${tool}': ${describe(validate.errors ?? [])}`, {
      tool,
      errors: (validate.errors ?? []).slice(0, MAX_LISTED_ERRORS).map((e) => ({ path: pathOf(e), message: cut(e.message ?? "invalid"), keyword: e.keyword })),
    });
  }
}

/**
 * An `invalid_arguments` refusal as a tool execution error (SEP-1303), in the connector's result
 * text: what is wrong, then each problem as JSON, for the model to correct its call from.
 */
export function invalidArgumentsResult(refusal: ManifoldError): string {
  const text = `${refusal.message}\n${JSON.stringify(refusal.data?.errors ?? [])}`;
  return JSON.stringify({ content: [{ type: "text", text }], isError: true });
}

/** The most errors an `invalid_arguments` answer lists (a custom keyword may report several). */
const MAX_LISTED_ERRORS = 20;
/**
 * The most characters of one problem's path or message: a path holds the caller's own property
 * names, of any length within the body limit (a 1 MB key answered as a 1 MB refusal).
 */
const MAX_PROBLEM_CHARS = 256;

export const cut = (text: string) => cutText(text, MAX_PROBLEM_CHARS);
export const pathOf = (e: ErrorObject) => cut(e.instancePath || "/");

const describe = (errors: ErrorObject[]) =>
  errors
    .slice(0, 5)
    .map((e) => `${pathOf(e)} ${cut(e.message ?? "is invalid")}`)
    .join("; ");
