import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";

type UpstreamHeaders = ReadonlyMap<string, Record<string, string>>;

/**
 * What the HTTP edge already parsed and checked for a request, handed to the SDK lane's
 * handlers through the transport's `authInfo` (the one per-request value the SDK passes on),
 * so pass-through headers are parsed once per request, not again in the tool handler.
 */
export function edgeContext(principalId: string, upstreamHeaders: UpstreamHeaders | undefined): AuthInfo {
  return { token: "", clientId: principalId, scopes: [], extra: { upstreamHeaders } };
}

/** The pass-through headers the edge parsed for this request, if any. */
export const upstreamHeadersOf = (authInfo: AuthInfo | undefined): UpstreamHeaders | undefined =>
  authInfo?.extra?.upstreamHeaders as UpstreamHeaders | undefined;
