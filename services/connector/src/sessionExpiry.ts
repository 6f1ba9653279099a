import { SdkHttpError } from "@modelcontextprotocol/client";

/**
 * The upstream no longer knows the session it was sent (it restarted, or expired it). It
 * refused the request before running it, so the request may be sent again on a new session:
 * the transport spec says a client that gets 404 for a request with an Mcp-Session-Id starts
 * a new session. Some servers (server-everything among them) answer 400 naming the session.
 * Only 2025-era upstreams have sessions; a 2026-07-28 upstream has nothing to forget.
 */
export class SessionNotFound extends Error {
  override readonly name = "SessionNotFound";
}

/** 404, or a 400 whose body speaks of the session (not, say, of a protocol version). */
export const sessionRefused = (status: number, body: string) => status === 404 || (status === 400 && /session/i.test(body));

/** Whether a failed request says the upstream forgot the session: on the direct path or through the SDK client. */
export function isSessionNotFound(error: unknown): boolean {
  if (error instanceof SessionNotFound) return true;
  return error instanceof SdkHttpError && sessionRefused(error.status, error.message);
}
