import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { UpstreamSession } from "./upstreamSession.js";

/**
 * The upstream no longer knows the session it was sent (it restarted, or expired it). It
 * refused the request before running it, so the request may be sent again on a new session:
 * the transport spec says a client that gets 404 for a request with an Mcp-Session-Id starts
 * a new session. Some servers (server-everything among them) answer 400 naming the session.
 */
export class SessionNotFound extends Error {
  override readonly name = "SessionNotFound";
}

/** 404, or a 400 whose body speaks of the session (not, say, of a protocol version). */
export const sessionRefused = (status: number, body: string) => status === 404 || (status === 400 && /session/i.test(body));

/** Whether a failed request says the upstream forgot the session: on the direct path or through the SDK client. */
export function isSessionNotFound(error: unknown): boolean {
  if (error instanceof SessionNotFound) return true;
  return error instanceof StreamableHTTPError && error.code !== undefined && sessionRefused(error.code, error.message);
}

/**
 * Runs `attempt` with the session's client and, when the upstream says it forgot the session,
 * once more on a new session (waiting up to `waitMs` for it). A second refusal is a failure.
 */
export async function onLiveSession<T>(session: UpstreamSession, client: Client, waitMs: number, attempt: (client: Client) => Promise<T>): Promise<T> {
  try {
    return await attempt(client);
  } catch (error) {
    if (!isSessionNotFound(error)) throw error;
    session.renew(client);
    return attempt(await session.client(waitMs));
  }
}
