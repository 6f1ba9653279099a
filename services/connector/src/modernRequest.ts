import { CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY } from "@modelcontextprotocol/client";

/** Who the connector says it is to upstreams, in either era. */
export const CLIENT_INFO = { name: "manifold-connector", version: "0.1.0" };

/**
 * The per-request `_meta` keys of a modern (2026-07-28) request, which has no `initialize` and
 * no session to carry them, as JSON members (no braces), built once per connection.
 */
export const envelopeMembers = (protocolVersion: string): string =>
  JSON.stringify({
    [PROTOCOL_VERSION_META_KEY]: protocolVersion,
    [CLIENT_INFO_META_KEY]: CLIENT_INFO,
    [CLIENT_CAPABILITIES_META_KEY]: {},
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
