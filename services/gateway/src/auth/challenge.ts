/**
 * The `WWW-Authenticate` value of a 401 (RFC 6750). The description is reduced to printable
 * ASCII without quotes or backslashes and bounded, so no text can break the header (or make
 * Node refuse to send it), whatever a message came to hold.
 */
export function bearerChallenge(description: string | undefined): string {
  if (description === undefined) return 'Bearer realm="manifold"';
  const safe = description.replace(/[^\x20-\x7e]|["\\]/g, "?").slice(0, 200);
  return `Bearer realm="manifold", error="invalid_token", error_description="${safe}"`;
}
