import type { Operation } from "rfc6902";

/**
 * JSON Pointer (RFC 6901) reads and the registry's patch operations over a definition's own
 * members only. rfc6902's pointer skips the tokens `constructor`, `prototype` and `__proto__` (its
 * guard against prototype pollution): for a property an upstream named `constructor`, the drift
 * review showed the pinned value of the property beside it, one the upstream could have planted
 * (consoleDriftPaths.e2e). Here such a token names the member it spells, and nothing inherited is
 * ever read or written.
 */

/** A pointer's tokens: `/a~1b/c~0d` is `a/b`, `c~d`. */
const tokensOf = (path: string): string[] => (path === "" ? [] : path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~")));

const isContainer = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

function at(document: unknown, tokens: readonly string[]): unknown {
  let value = document;
  for (const token of tokens) {
    if (!isContainer(value) || !Object.hasOwn(value, token)) return undefined;
    value = value[token];
  }
  return value;
}

/** The value `path` names in `document`, or undefined when it names none. */
export const valueAt = (document: unknown, path: string): unknown => at(document, tokensOf(path));

/**
 * `document` after one operation of the registry's patches (add, remove, replace; it writes no
 * other), changed in place where it can be; the value it now is, as an operation on the root replaces it.
 * An operation whose parent is missing changes nothing.
 */
export function applyOperation(document: unknown, op: Operation): unknown {
  const tokens = tokensOf(op.path);
  const value = "value" in op ? structuredClone(op.value) : undefined;
  if (tokens.length === 0) return op.op === "remove" ? undefined : op.op === "add" || op.op === "replace" ? value : document;
  const parent = at(document, tokens.slice(0, -1));
  const key = tokens[tokens.length - 1]!;
  if (!isContainer(parent)) return document;
  if (Array.isArray(parent)) {
    const index = key === "-" ? parent.length : /^(0|[1-9]\d*)$/.test(key) ? Number(key) : -1;
    if (index < 0 || index > parent.length) return document;
    if (op.op === "add") parent.splice(index, 0, value);
    else if (op.op === "remove") parent.splice(index, 1);
    else if (op.op === "replace") parent[index] = value;
  } else if (op.op === "remove") delete parent[key];
  // Defined, not assigned: a member named `__proto__` is a member, never the prototype.
  else if (op.op === "add" || op.op === "replace") Object.defineProperty(parent, key, { value, writable: true, enumerable: true, configurable: true });
  return document;
}
