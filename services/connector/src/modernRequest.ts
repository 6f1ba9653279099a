import { INVALID_RESULT, isRecord, ManifoldError, paramArgument, type ParamHeader } from "@manifold/contracts";
import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY, SERVER_INFO_META_KEY } from "@modelcontextprotocol/client";

/** Who the connector says it is to upstreams, in either era. */
export const CLIENT_INFO = { name: "manifold-connector", version: "0.1.0" };

/**
 * The per-request `_meta` keys of a modern (2026-07-28) request, which has no `initialize` and
 * no session to carry them, as JSON members (no braces), built once per connection.
 */
export const envelopeMembers = (protocolVersion: string, capabilities: object = {}): string =>
  JSON.stringify({
    [PROTOCOL_VERSION_META_KEY]: protocolVersion,
    [CLIENT_INFO_META_KEY]: CLIENT_INFO,
    [CLIENT_CAPABILITIES_META_KEY]: capabilities,
  }).slice(1, -1);

/**
 * `params` (serialized by the gateway) with `extra` members added to its `_meta`; ours win
 * over the caller's on the same key (a caller must not choose the protocol version or the
 * progress token the connector correlates on). Without a `_meta` of the caller's, the members
 * are spliced in without parsing: the hot path's common case.
 */
export function withMeta(paramsJson: string, extraMembers: string): string {
  if (!paramsJson.includes('"_meta"')) {
    const rest = paramsJson.trimStart().slice(1).trimStart();
    return `{"_meta":{${extraMembers}}${rest.startsWith("}") ? "" : ","}${rest}`;
  }
  const params = JSON.parse(paramsJson) as { _meta?: Record<string, unknown> };
  const extra = JSON.parse(`{${extraMembers}}`) as Record<string, unknown>;
  return JSON.stringify({ ...params, _meta: { ...params._meta, ...extra } });
}

/**
 * A 2026-07-28 upstream's `_meta` without its `serverInfo`: that names the upstream, and the
 * gateway names itself to its agent (the 2.x SDK server keeps a serverInfo it finds). Undefined
 * when nothing else is left; anything that is not an object is returned as it is.
 */
export function withoutUpstreamInfo(meta: unknown): unknown {
  if (!isRecord(meta) || !(SERVER_INFO_META_KEY in meta)) return meta;
  const { [SERVER_INFO_META_KEY]: _upstream, ...kept } = meta;
  return Object.keys(kept).length > 0 ? kept : undefined;
}

/**
 * A 2026-07-28 upstream's result as the era-neutral result the bus carries, whichever path read
 * it: without `resultType` (the upstream hop's wire; the SDK client drops it too) and without the
 * upstream's `serverInfo`. A task or a round of questions (another `resultType`) is returned as it
 * is. Passed on with both, a 2025 agent saw the upstream's wire fields, and every call through a
 * 2.x upstream was re-parsed at the gateway to merge them.
 */
export function neutralResult(result: unknown): unknown {
  if (!isRecord(result)) return result;
  const { resultType, _meta: meta, ...rest } = result;
  if (resultType !== undefined && resultType !== "complete") return result;
  if (resultType === undefined && !(isRecord(meta) && SERVER_INFO_META_KEY in meta)) return result;
  const kept = withoutUpstreamInfo(meta);
  return kept === undefined ? rest : { ...rest, _meta: kept };
}

/**
 * A tools/call result the direct caller read, its `resultType` judged as the SDK client judges it
 * on the other lane (stdio, SSE). The connector is the upstream's client, and "a `resultType` of any
 * value unrecognized by the client MUST be considered invalid" (2026-07-28 basic/index): from a
 * 2026-07-28 upstream only "complete", or "task" where the request declared the tasks extension
 * (`input_required` is read before), else `upstream_error` (`invalid_result`). A 2025 result has no
 * such field: dropped. Before, "weird" or an unasked task (an upstream task id the gateway never
 * mapped) reached agents of both eras as a result (strayResultTypes.e2e).
 */
export function judgedResult(result: Record<string, unknown>, modern: boolean, tasksDeclared: boolean): unknown {
  const resultType = result.resultType;
  if (!modern) {
    if (resultType === undefined) return result;
    // Copied only then: the common answer keeps its identity and is passed on as written (`resultTextOf`).
    const { resultType: _dropped, ...rest } = result;
    return rest;
  }
  if (resultType === undefined || resultType === "complete" || (resultType === "task" && tasksDeclared)) return neutralResult(result);
  throw new ManifoldError("upstream_error", "the upstream answered tools/call with a resultType this request does not allow", { reason: INVALID_RESULT });
}

const SENTINEL = /^=\?base64\?.*\?=$/s;
/** Visible ASCII and inner spaces/tabs only: anything else is carried Base64-encoded. */
const HEADER_SAFE = /^[\x21-\x7e]([\x20\x21-\x7e\t]*[\x21-\x7e])?$/;

/**
 * A value for `Mcp-Name` (or `Mcp-Param-*`) as the Streamable HTTP transport's Value Encoding
 * asks: plain when it is a safe header value, else `=?base64?…?=` of its UTF-8 bytes (also
 * when the plain value looks like the sentinel).
 */
export function headerValue(value: string): string {
  if (HEADER_SAFE.test(value) && !SENTINEL.test(value)) return value;
  return `=?base64?${Buffer.from(value, "utf8").toString("base64")}?=`;
}

/**
 * The `Mcp-Param-*` headers of one call: each declared parameter present in `args` as a string,
 * a safe integer or a boolean, encoded like `Mcp-Name`; absent (or unusable) ones send none.
 */
export function paramHeaderValues(declared: readonly ParamHeader[], args: unknown): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const { path, header } of declared) {
    const value = paramArgument(args, path);
    const text = typeof value === "string" ? value : typeof value === "boolean" || Number.isSafeInteger(value) ? String(value) : undefined;
    if (text !== undefined) headers[header] = headerValue(text);
  }
  return headers;
}
