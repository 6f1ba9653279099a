import { SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from "@modelcontextprotocol/server";
import type { Socket } from "node:net";
import type { Closable } from "./heldByCaller.js";

/**
 * How long a stream Manifold ends may take to hand its closing frame over before it is cut: a
 * client that does not read holds no close longer than this.
 */
export const CLOSING_DEADLINE_MS = 1_000;

/** A held response as ending it needs one: a Node `ServerResponse` (unit tests hold less, and are cut). */
export type Endable = Closable & {
  readonly headersSent?: boolean;
  readonly writableEnded?: boolean;
  readonly socket?: Socket | null;
  write?(chunk: string): unknown;
  end?(): unknown;
};

/** The last frame each open 2026-07-28 listen stream is owed, by its response. */
const closingFrames = new WeakMap<object, string>();

/**
 * Remembers what a listen stream is owed when Manifold ends it: the successful `subscriptions/listen`
 * result (basic/patterns/subscriptions, "Cancellation": the server SHOULD send it to signal a graceful
 * end, then close), as the SDK's own `closeAll()` writes it.
 */
export function owesClosingResult(response: object, listenId: string | number, serverInfo: { name: string; version: string }): void {
  const result = { resultType: "complete", _meta: { [SUBSCRIPTION_ID_META_KEY]: listenId, [SERVER_INFO_META_KEY]: serverInfo } };
  closingFrames.set(response, `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", id: listenId, result })}\n\n`);
}

/**
 * Ends a long-lived response Manifold ends itself (its grant or key revoked, its consumer deleted,
 * its caller giving way at the connection bound). A listen stream gets its closing result, then its
 * end; before, every one was cut by a bare destroy(), which a client takes for a drop and answers by
 * reconnecting. The close is bounded: a stream not closed `CLOSING_DEADLINE_MS` later (its client
 * does not read) is cut. `release`: the caller closes the connection at once (the connection
 * bound), so the frame is handed to the kernel now, and what it does not take is lost.
 * Anything else held (a 2025 GET stream, a call) is cut as before.
 */
export function endHeld(response: Endable, { release = false } = {}): void {
  if (response.destroyed) return;
  const frame = closingFrames.get(response);
  if (frame === undefined || !response.headersSent || response.writableEnded || !response.write || !response.end) return void response.destroy?.();
  response.write(frame);
  response.end();
  if (release) return void response.socket?.uncork();
  const deadline = setTimeout(() => response.destroy?.(), CLOSING_DEADLINE_MS).unref();
  response.once("close", () => clearTimeout(deadline));
}
