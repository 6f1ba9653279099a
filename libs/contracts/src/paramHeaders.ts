import { isRecord } from "./boundedJson.js";
import { cutText } from "./shownText.js";

/**
 * A tool parameter mirrored into a request header (2026-07-28, basic/transports/streamable-http,
 * "Custom Headers from Tool Parameters"): where it sits in `arguments`, its header, and its
 * schema type (numbers compare by value: `42.0` is `42`).
 */
export interface ParamHeader {
  readonly path: readonly string[];
  /** `Mcp-Param-{x-mcp-header}`. */
  readonly header: string;
  readonly type?: string | undefined;
}

type SchemaNode = { properties?: unknown; type?: unknown; "x-mcp-header"?: unknown };

/** An RFC 9110 field-name token (`1*tchar`). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** The only types a mirrored parameter may have ("Parameters with type `number` are not permitted"). */
const MIRRORABLE = new Set(["string", "integer", "boolean"]);
/**
 * Keywords whose subschemas are not statically reachable: an annotation under one makes the tool
 * invalid (the 2.4 client's list, `NON_REACHABLE_SUBSCHEMA_KEYWORDS`). Those holding a name → schema map are walked by value.
 */
const UNREACHABLE = ["items", "prefixItems", "contains", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "propertyNames", "patternProperties", "dependentSchemas", "oneOf", "anyOf", "allOf", "not", "if", "then", "else", "$defs", "definitions"];
const BY_NAME = new Set(["patternProperties", "dependentSchemas", "$defs", "definitions"]);

/** Every node of a schema that carries an `x-mcp-header` key, whether a client may mirror it, and its path. Iterative: the schema is an upstream's. */
function annotatedNodes(inputSchema: unknown): { node: SchemaNode; path: string[]; reachable: boolean }[] {
  const found: { node: SchemaNode; path: string[]; reachable: boolean }[] = [];
  const pending: { node: unknown; path: string[]; reachable: boolean }[] = [{ node: inputSchema, path: [], reachable: true }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    if (!isRecord(next.node)) continue;
    const node = next.node as SchemaNode & Record<string, unknown>;
    if ("x-mcp-header" in node) found.push({ node, path: next.path, reachable: next.reachable && next.path.length > 0 });
    if (isRecord(node.properties)) for (const [key, child] of Object.entries(node.properties)) pending.push({ node: child, path: [...next.path, key], reachable: next.reachable });
    for (const keyword of UNREACHABLE) {
      const sub = node[keyword];
      if (sub === undefined) continue;
      const branches = Array.isArray(sub) ? sub : BY_NAME.has(keyword) && isRecord(sub) ? Object.values(sub) : [sub];
      for (const branch of branches) pending.push({ node: branch, path: next.path, reachable: false });
    }
  }
  return found;
}

/**
 * The annotations of a schema a 2026-07-28 client may mirror, and the nodes of the others with why
 * (streamable-http, "Schema Extension"): a non-empty token, on a string, integer or boolean
 * property reached through `properties` keys only, unique but for case. Of two names equal but
 * for case, neither is kept: which one the upstream meant is not known.
 */
function scan(inputSchema: unknown): { declared: ParamHeader[]; invalid: Map<SchemaNode, { path: string[]; reason: string }> } {
  const annotated = annotatedNodes(inputSchema);
  const invalid = new Map<SchemaNode, { path: string[]; reason: string }>();
  const byName = new Map<string, { node: SchemaNode; path: string[] }[]>();
  for (const { node, path, reachable } of annotated) {
    const name = node["x-mcp-header"];
    const reason =
      !reachable ? (node === inputSchema ? "on the schema itself, no parameter" : "not reached through properties alone (under items, anyOf, …)")
      : typeof name !== "string" || !TOKEN.test(name) ? "not an HTTP header name (token)"
      : typeof node.type !== "string" || !MIRRORABLE.has(node.type) ? `on a parameter of type ${typeof node.type === "string" ? node.type.slice(0, 32) : "other than one name"} (only string, integer and boolean ones may be mirrored)`
      : undefined;
    if (reason) invalid.set(node, { path, reason });
    else byName.set((name as string).toLowerCase(), [...(byName.get((name as string).toLowerCase()) ?? []), { node, path }]);
  }
  for (const twins of byName.values()) if (twins.length > 1) for (const { node, path } of twins) invalid.set(node, { path, reason: "equal but for case to another parameter's" });
  const declared = annotated
    .filter(({ node }) => !invalid.has(node))
    .map(({ node, path }) => ({ path, header: `Mcp-Param-${node["x-mcp-header"] as string}`, type: node.type as string }));
  return { declared, invalid };
}

/**
 * The `x-mcp-header` declarations of a tool's `inputSchema` that a 2026-07-28 client may mirror.
 * Only these are demanded of a request: an invalid one no conforming client sends.
 */
export function paramHeadersOf(inputSchema: unknown): ParamHeader[] {
  return scan(inputSchema).declared;
}

/**
 * A tool's `inputSchema` as the gateway publishes it: without the `x-mcp-header` annotations a
 * 2026-07-28 client may not mirror, the same object when it has none. Such a tool (a 2025 upstream's,
 * or a 2026 one's over stdio, which no client filters) was listed as pinned, and every conforming
 * Streamable HTTP client leaves a tool with one out of its list: it went missing for 2026 agents only.
 * The annotation is a hint for intermediaries before the gateway; the upstream never reads it from
 * an agent's headers (a 2025 or stdio upstream takes none), so leaving it out loses the tool nothing.
 */
export function publishedInputSchema<T>(inputSchema: T): T {
  if (scan(inputSchema).invalid.size === 0) return inputSchema;
  // A copy: the pinned definition stays as the upstream reported it (its hash, drift).
  const copy = JSON.parse(JSON.stringify(inputSchema)) as T;
  for (const node of scan(copy).invalid.keys()) delete node["x-mcp-header"];
  return copy;
}

/** An annotation `publishedInputSchema` leaves out: where (dotted `properties` keys), its name, and why. */
export interface UnpublishedParamHeader {
  readonly path: string;
  /** The upstream's `x-mcp-header` value, when it is a string. */
  readonly header?: string;
  readonly reason: string;
}
/** What an operator is shown of one tool: its first annotations left out, each text cut short (an upstream writes them). */
const SHOWN = { annotations: 16, pathChars: 200, headerChars: 64 };

/**
 * The `x-mcp-header` annotations of a tool's `inputSchema` that `publishedInputSchema` leaves out,
 * for the operator (the upstream's view in the admin API): agents see the tool without them, and
 * nothing else says so. By path, the first 16; empty when none.
 */
export function unpublishedParamHeaders(inputSchema: unknown): UnpublishedParamHeader[] {
  const shown = [...scan(inputSchema).invalid]
    .map(([node, { path, reason }]) => ({ node, path: path.join("."), reason }))
    .sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0))
    .slice(0, SHOWN.annotations);
  return shown.map(({ node, path, reason }) => {
    const name = node["x-mcp-header"];
    return { path: cutText(path, SHOWN.pathChars), ...(typeof name === "string" ? { header: cutText(name, SHOWN.headerChars) } : {}), reason };
  });
}

/** The argument a declaration mirrors, when `args` has one there. */
export function paramArgument(args: unknown, path: readonly string[]): unknown {
  let value: unknown = args;
  for (const key of path) value = isRecord(value) ? value[key] : undefined;
  return value;
}

/** A header value's text: the Base64 sentinel (`=?base64?…?=`, canonical, UTF-8) decoded; undefined when it is not decodable. */
function decoded(value: string): string | undefined {
  if (!(value.startsWith("=?base64?") && value.endsWith("?="))) return value;
  const b64 = value.slice(9, -2);
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(b64)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.from(b64, "base64"));
  } catch {
    return undefined;
  }
}

/**
 * Where a request's `Mcp-Param-*` headers disagree with its arguments, as the transport requires
 * servers to check: each declared parameter the body carries (a string, number or boolean) needs
 * its header, decoding to the same value; one the body does not carry needs none. Undefined when
 * they agree. `header` reads a request header by its lower-case name.
 */
export function paramHeaderMismatch(declared: readonly ParamHeader[], args: unknown, header: (name: string) => string | undefined): { header: string; reason: string } | undefined {
  for (const { path, header: name, type } of declared) {
    const body = paramArgument(args, path);
    const text = typeof body === "string" ? body : typeof body === "boolean" || (typeof body === "number" && Number.isFinite(body)) ? String(body) : undefined;
    if (text === undefined) continue;
    const where = `arguments.${path.join(".")}`;
    const sent = header(name.toLowerCase());
    if (sent === undefined) return { header: name, reason: `the body carries ${where} but the ${name} header is absent` };
    const value = decoded(sent);
    if (value === undefined) return { header: name, reason: `the ${name} header carries an invalid Base64 sentinel value` };
    const numeric = (type === "integer" || type === "number") && typeof body === "number" && /^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(value);
    if (numeric ? Number(value) !== body : value !== text) return { header: name, reason: `the ${name} header disagrees with ${where} in the body` };
  }
  return undefined;
}
