import { createPatch, type Operation } from "rfc6902";

/**
 * Arrays longer than this are diffed as one replacement. rfc6902 diffs arrays by edit distance
 * (time and memory: the product of the two lengths, each cell a list of operations): one upstream
 * changing a 1,000-value enum took a registry 298 s and 4.2 GiB before it died, and 20,000
 * values threw a RangeError, so the change was never recorded.
 */
const DIFFED_ARRAY_LENGTH = 64;

/** The JSON Patch from one definition to another, arrays past `DIFFED_ARRAY_LENGTH` replaced whole. */
export function definitionPatch(before: unknown, after: unknown): Operation[] {
  return createPatch(before, after, (input, output, ptr) =>
    Array.isArray(input) && Array.isArray(output) && (input.length > DIFFED_ARRAY_LENGTH || output.length > DIFFED_ARRAY_LENGTH)
      ? [{ op: "replace", path: ptr.toString(), value: output }]
      : undefined,
  );
}

/** Keys whose values are prose an agent reads. */
const PROSE = new Set(["description", "title", "$comment", "examples"]);
/** Keys whose string values an agent reads as names or values it may send. */
const NAMED = new Set(["enum", "const", "default", "name"]);
/** A name that carries no sentence: what a new property, argument or enum value may be called and still be adopted as compatible. */
const IDENTIFIER = /^[A-Za-z0-9_.:/-]{1,64}$/;

/** The prose and the names in a definition, walked without recursion (a hostile one may be deep). */
function textOf(value: unknown): { prose: Set<string>; names: Set<string> } {
  const prose = new Set<string>();
  const names = new Set<string>();
  const stack: [unknown, string | undefined][] = [[value, undefined]];
  while (stack.length > 0) {
    const [v, key] = stack.pop()!;
    if (key !== undefined && PROSE.has(key)) {
      prose.add(typeof v === "string" ? v : JSON.stringify(v));
    } else if (typeof v === "string") {
      if (key !== undefined && NAMED.has(key)) names.add(v);
    } else if (Array.isArray(v)) {
      for (const item of v) stack.push([item, key]);
    } else if (typeof v === "object" && v !== null) {
      for (const [k, item] of Object.entries(v)) {
        // The keys of `properties` are the names of what an agent sends.
        if (key === "properties") names.add(k);
        stack.push([item, k]);
      }
    }
  }
  return { prose, names };
}

/**
 * How many strings an agent would read in `after` that it did not in `before`: new prose
 * anywhere (a new property's description, an output schema's text, a new argument's title),
 * and new names that are not plain identifiers (a property, enum value or argument named with
 * a sentence). Such a change is description-class, never adopted silently, however compatible
 * its structure: text is how a tool's definition is poisoned.
 */
export function newText(before: unknown, after: unknown): number {
  const b = textOf(before);
  const a = textOf(after);
  let count = 0;
  for (const text of a.prose) if (!b.prose.has(text)) count++;
  for (const name of a.names) if (!b.names.has(name) && !IDENTIFIER.test(name)) count++;
  return count;
}
