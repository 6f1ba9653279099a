export const REDACTED = "[redacted]";

/** A copy of `value` with every property named in `fields` (at any depth, case-insensitive) replaced. */
export function redactFields(value: unknown, fields: readonly string[]): unknown {
  if (fields.length === 0) return value;
  const names = new Set(fields.map((f) => f.toLowerCase()));
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (typeof v !== "object" || v === null) return v;
    return Object.fromEntries(Object.entries(v).map(([k, inner]) => [k, names.has(k.toLowerCase()) ? REDACTED : walk(inner)]));
  };
  return walk(value);
}
