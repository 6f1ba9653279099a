/**
 * The headers every request of one load client sends, as undici's flat list (name, value, name,
 * value …): the caller's extra headers first (the gateway's credential), in the order given, then
 * the client's own. Built once per client (per session, for a 2025 one); a request appends only its
 * own (`Mcp-Method`, `Mcp-Name`) to a copy.
 *
 * Not `{ ...extra, "content-type": … }` on every request: on Node 20 (V8 11.3) an object spread
 * from a non-empty object and then given more properties misses its store inline caches on every
 * creation (`Runtime_DefineNamedOwnIC_Miss`/`_Slow`, `JSObject::MigrateToMap`), ~27,000
 * instructions a request in the load generator, which it paid only against the targets it sends a
 * credential to (Manifold), never the bare hops (docs/performance.md, "What the load generator
 * pays per call", 2026-12-07). The bytes on the wire are the same.
 */
export function headerList(extra: Readonly<Record<string, string>>, own: Readonly<Record<string, string>>): readonly string[] {
  const list: string[] = [];
  for (const [name, value] of Object.entries(extra)) list.push(name, value);
  for (const [name, value] of Object.entries(own)) list.push(name, value);
  return list;
}
