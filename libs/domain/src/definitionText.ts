import { createPatch, type Operation } from "rfc6902";

/**
 * Only arrays of at most this many primitives are diffed item by item; any other array is one
 * replacement. rfc6902 diffs arrays by edit distance (time and memory: the product of the two
 * lengths, each cell a list of operations, and again inside every item that is itself an array
 * or object): one upstream changing a 1,000-value enum took a registry 298 s and 4.2 GiB before it
 * died, and 64 `anyOf` branches of 64-value enums took 96 s.
 */
const DIFFED_ARRAY_LENGTH = 64;
const diffedItemByItem = (items: unknown[]) => items.length <= DIFFED_ARRAY_LENGTH && items.every((item) => item === null || typeof item !== "object");

/** The JSON Patch from one definition to another, bounded: see `DIFFED_ARRAY_LENGTH`. */
export function definitionPatch(before: unknown, after: unknown): Operation[] {
  return createPatch(before, after, (input, output, ptr) =>
    Array.isArray(input) && Array.isArray(output) && !(diffedItemByItem(input) && diffedItemByItem(output))
      ? [{ op: "replace", path: ptr.toString(), value: output }]
      : undefined,
  );
}

/** Keywords whose values are prose an agent reads. */
const PROSE = new Set(["description", "title", "$comment", "examples"]);
/** Keywords whose value maps names to schemas. */
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]);
/** Keywords whose value is a schema or a list of schemas. */
const SCHEMAS = new Set(["items", "prefixItems", "additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties", "propertyNames", "contains", "not", "if", "then", "else", "anyOf", "oneOf", "allOf"]);
/** Other JSON Schema keywords: their names are not text, their values are (a `default`, an `enum`, a `pattern`…). */
const KEYWORDS = new Set([
  "type", "enum", "const", "default", "required", "pattern", "format", "$ref", "$id", "$schema", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
  "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
  "minProperties", "maxProperties", "minContains", "maxContains", "dependentRequired", "contentEncoding", "contentMediaType", "contentSchema",
  "readOnly", "writeOnly", "deprecated",
]);
/** A name or value that carries no sentence: a new one may arrive in a compatible change. */
const IDENTIFIER = /^[A-Za-z0-9_.:/-]{1,64}$/;

/**
 * The prose and the other strings (names, values, unknown keys) an agent reads in a definition,
 * walked without recursion (a hostile one may be deep). A schema's keywords are told from the
 * names it defines, so a property called `description` is a name, not prose.
 */
function textOf(definition: unknown): { prose: Set<string>; strings: Set<string> } {
  const prose = new Set<string>();
  const strings = new Set<string>();
  const stack: [unknown, "schema" | "value"][] = [[definition, "schema"]];
  while (stack.length > 0) {
    const [node, role] = stack.pop()!;
    if (typeof node === "string") strings.add(node);
    else if (Array.isArray(node)) for (const item of node) stack.push([item, role]);
    else if (typeof node === "object" && node !== null) {
      for (const [key, value] of Object.entries(node)) {
        if (PROSE.has(key)) prose.add(typeof value === "string" ? value : JSON.stringify(value));
        else if (role === "schema" && SCHEMA_MAPS.has(key) && typeof value === "object" && value !== null && !Array.isArray(value)) {
          for (const [name, schema] of Object.entries(value)) {
            strings.add(name);
            stack.push([schema, "schema"]);
          }
        } else if (role === "schema" && SCHEMAS.has(key)) stack.push([value, "schema"]);
        else {
          // An unknown key (`x-…`, anything in a value) is text too; a keyword's name is not.
          if (role === "value" || !KEYWORDS.has(key)) strings.add(key);
          stack.push([value, "value"]);
        }
      }
    }
  }
  return { prose, strings };
}

/**
 * How many strings an agent would read in `after` that it did not in `before`: new prose (a
 * title, description, `$comment` or `examples`, wherever they are) and any other new string,
 * name or unknown key that is not a plain identifier (letters, digits, `_.:/-`, at most 64: a
 * new property, enum value or argument name). Such a change is description-class, never adopted
 * silently however compatible its structure: text is how a definition is poisoned.
 */
export function newText(before: unknown, after: unknown): number {
  const b = textOf(before);
  const a = textOf(after);
  let count = 0;
  for (const text of a.prose) if (!b.prose.has(text)) count++;
  for (const text of a.strings) if (!b.strings.has(text) && !IDENTIFIER.test(text)) count++;
  return count;
}

/**
 * Characters that show as nothing, or move what is shown, yet reach an agent as text: format
 * characters (zero-width, bidirectional controls, and the tag block that spells whole sentences
 * unseen), private-use characters, control characters other than tab, line feed and carriage
 * return, and every code point Unicode calls default-ignorable (variation selectors, the tag block's
 * unassigned code points, U+034F, Hangul fillers…): Chromium draws those as nothing or a blank
 * though they are not format characters, and the set before missed them (helper-161). An
 * upstream added a sentence of tag characters to a description: the drift review showed
 * `"A safe tool"` on both sides, and agents got the sentence once accepted.
 * (The console marks each where it shows upstream text, `console/src/hiddenText.ts`.)
 */
const HIDDEN = /(?![\t\n\r])[\p{Cc}\p{Cf}\p{Co}\p{Default_Ignorable_Code_Point}]/gu;

/** The hidden characters in a definition's strings and keys (walked without recursion): how many, and the first few as `U+XXXX`. */
export function hiddenCharacters(definition: unknown): { count: number; first: string[] } {
  let count = 0;
  const first: string[] = [];
  const note = (text: string) => {
    for (const [c] of text.matchAll(HIDDEN)) {
      count++;
      if (first.length < 3) first.push(`U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`);
    }
  };
  const stack: unknown[] = [definition];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === "string") note(node);
    else if (Array.isArray(node)) for (const item of node) stack.push(item);
    else if (typeof node === "object" && node !== null) {
      for (const [key, value] of Object.entries(node)) {
        note(key);
        stack.push(value);
      }
    }
  }
  return { count, first };
}

/** A drift reason when `after` hides more characters than `before` did (`hiddenCharacters`), else none. */
export function hiddenTextReason(before: unknown, after: unknown): string | undefined {
  const now = hiddenCharacters(after);
  // None now (the usual case): the pinned definition need not be walked too.
  if (now.count === 0 || now.count <= hiddenCharacters(before).count) return undefined;
  return `carries ${now.count} invisible ${now.count === 1 ? "character" : "characters"} (${now.first.join(", ")}${now.count > now.first.length ? ", …" : ""}): text an agent reads that a reviewer does not see`;
}
