import { JsonLimits, jsonTextTooDeep } from "@manifold/contracts";

export const REDACTED = "[redacted]";

type Container = Record<string, unknown> | unknown[];

/**
 * A copy of `value` with every property named in `fields` (at any depth, case-insensitive)
 * replaced, also inside strings that hold a JSON document (`redactedJsonText`). The values are an
 * agent's or upstream's: the walk keeps its own stack, so no nesting can overflow the call stack.
 */
export function redactFields(value: unknown, fields: readonly string[]): unknown {
  if (fields.length === 0 || typeof value !== "object" || value === null) return value;
  return redactIn(value, new Set(fields.map((f) => f.toLowerCase()))).copy;
}

/** The walk of `redactFields` over a parsed value, and whether it replaced anything. */
function redactIn(value: object, names: ReadonlySet<string>): { copy: unknown; redacted: boolean } {
  let redacted = false;
  const pending: [object, Container][] = [];
  const copyOf = (v: unknown): unknown => {
    if (typeof v === "string") {
      const text = redactedJsonText(v, names);
      if (text === undefined) return v;
      redacted = true;
      return text;
    }
    if (typeof v !== "object" || v === null) return v;
    const target: Container = Array.isArray(v) ? new Array<unknown>(v.length) : {};
    pending.push([v, target]);
    return target;
  };
  const root = copyOf(value);
  while (pending.length > 0) {
    const [source, target] = pending.pop()!;
    if (Array.isArray(source)) {
      for (let i = 0; i < source.length; i++) (target as unknown[])[i] = copyOf(source[i]);
      continue;
    }
    for (const [key, inner] of Object.entries(source)) {
      const named = names.has(key.toLowerCase());
      if (named) redacted = true;
      // Defined, not assigned: an own `__proto__` key must stay a key, not become a prototype.
      Object.defineProperty(target, key, { value: named ? REDACTED : copyOf(inner), enumerable: true, writable: true, configurable: true });
    }
  }
  return { copy: root, redacted };
}

const JSON_DOCUMENT = /^\s*[[{]/;

/**
 * A string holding a JSON object or array, with the named fields redacted inside it (serialized
 * again); undefined when it holds no JSON, or none of them. A tool with structured output repeats
 * it as JSON in a text block (MCP: it SHOULD), many tools answer JSON only as text, and an argument
 * may be a JSON document: the field was blanked in the structure and recorded in the text. Nested
 * documents are each a string inside the one before, so their escaping doubles at each level: the
 * recursion stays shallow. Past the result depth a document is left as it is (never serialized
 * again, which could overflow the stack and lose the whole record).
 */
function redactedJsonText(text: string, names: ReadonlySet<string>): string | undefined {
  if (!JSON_DOCUMENT.test(text) || jsonTextTooDeep(text, JsonLimits.resultDepth)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const { copy, redacted } = redactIn(parsed, names);
  return redacted ? JSON.stringify(copy) : undefined;
}
