import { isRecord } from "./boundedJson.js";

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

/**
 * The `x-mcp-header` declarations of a tool's `inputSchema`, on properties reached through a
 * chain of `properties` keys only. Iterative: the schema is an upstream's.
 */
export function paramHeadersOf(inputSchema: unknown): ParamHeader[] {
  const found: ParamHeader[] = [];
  const pending: { node: unknown; path: string[] }[] = [{ node: inputSchema, path: [] }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    if (!isRecord(next.node)) continue;
    const { properties, type, "x-mcp-header": name } = next.node as SchemaNode;
    if (typeof name === "string" && next.path.length > 0) found.push({ path: next.path, header: `Mcp-Param-${name}`, ...(typeof type === "string" ? { type } : {}) });
    if (isRecord(properties)) for (const [key, child] of Object.entries(properties)) pending.push({ node: child, path: [...next.path, key] });
  }
  return found;
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
