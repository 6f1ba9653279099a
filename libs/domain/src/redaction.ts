export const REDACTED = "[redacted]";

type Container = Record<string, unknown> | unknown[];

/**
 * A copy of `value` with every property named in `fields` (at any depth, case-insensitive)
 * replaced. The values are an agent's or upstream's: the walk keeps its own stack, so no
 * nesting can overflow the call stack.
 */
export function redactFields(value: unknown, fields: readonly string[]): unknown {
  if (fields.length === 0 || typeof value !== "object" || value === null) return value;
  const names = new Set(fields.map((f) => f.toLowerCase()));
  const pending: [object, Container][] = [];
  const copyOf = (v: unknown): unknown => {
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
      // Defined, not assigned: an own `__proto__` key must stay a key, not become a prototype.
      Object.defineProperty(target, key, { value: names.has(key.toLowerCase()) ? REDACTED : copyOf(inner), enumerable: true, writable: true, configurable: true });
    }
  }
  return root;
}
