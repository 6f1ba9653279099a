/**
 * The `WWW-Authenticate` value of a 401 (RFC 6750), with `resource_metadata` (RFC 9728 §5.1)
 * when the gateway offers OAuth sign-in. The description is reduced to printable ASCII without
 * quotes or backslashes and bounded, so no text can break the header (or make Node refuse to
 * send it), whatever a message came to hold; the metadata URL is ours (public URL or checked Host).
 */
export function bearerChallenge(description: string | undefined, resourceMetadata?: string, scopes: readonly string[] = []): string {
  const metadata =
    resourceMetadata === undefined
      ? ""
      : `, resource_metadata="${resourceMetadata.replace(/[^\x21-\x7e]|["\\]/g, "")}"${scopes.length > 0 ? `, scope="${scopes.join(" ")}"` : ""}`;
  if (description === undefined) return `Bearer realm="manifold"${metadata}`;
  const safe = description.replace(/[^\x20-\x7e]|["\\]/g, "?").slice(0, 200);
  return `Bearer realm="manifold"${metadata}, error="invalid_token", error_description="${safe}"`;
}
