import { ManifoldError } from "@manifold/contracts";

/**
 * What a long-lived exchange may keep of its opening request: a 2025 `initialize` (kept for the
 * session's life, here and in the session directory), a 2026-07-28 listen besides its URIs.
 * Sessions are bounded by count per caller and per replica; without a size bound, 200 initialize
 * requests padded to 900 KB kept 175 MiB of one gateway's heap and 172 MiB of the session
 * directory's storage. Real clients declare a few hundred bytes.
 */
export const MAX_KEPT_REQUEST_BYTES = 16 * 1024;

/** An initialize request a session may keep for its life (here, and in the directory): at most `MAX_KEPT_REQUEST_BYTES`. */
export function mustBeKeptSize(initialize: unknown): void {
  const bytes = Buffer.byteLength(JSON.stringify(initialize));
  if (bytes > MAX_KEPT_REQUEST_BYTES) {
    throw new ManifoldError("invalid_request", `the initialize request is ${bytes} bytes; a session keeps it for its life, so at most ${MAX_KEPT_REQUEST_BYTES} bytes are accepted`, {
      maxBytes: MAX_KEPT_REQUEST_BYTES,
    });
  }
}
