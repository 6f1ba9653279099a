import { SERVER_INFO_META_KEY, SUBSCRIPTION_ID_META_KEY } from "@modelcontextprotocol/server";
import type { Socket } from "node:net";

/** A response held open for a caller: what holding it, and ending it, need. */
export type Closable = { once(event: "close", listener: () => void): unknown; destroy?(): unknown; readonly destroyed?: boolean; readonly writableLength?: number };

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

/** What each open 2026-07-28 listen stream is owed when Manifold ends it, by its response. */
const owed = new WeakMap<object, { closing: string; listsChanged: string }>();

const frame = (message: object) => `event: message\ndata: ${JSON.stringify({ jsonrpc: "2.0", ...message })}\n\n`;

/** The list-change notifications a listen stream asked for and may be sent (`notifications` of its request, as the SDK honours them). */
const LIST_CHANGES = { toolsListChanged: "notifications/tools/list_changed", promptsListChanged: "notifications/prompts/list_changed", resourcesListChanged: "notifications/resources/list_changed" } as const;
export type ListChanges = Partial<Record<keyof typeof LIST_CHANGES, boolean>>;

/**
 * Remembers what a listen stream is owed when Manifold ends it: the successful `subscriptions/listen`
 * result (basic/patterns/subscriptions, "Cancellation": the server SHOULD send it to signal a graceful
 * end, then close), as the SDK's own `closeAll()` writes it; and, when it ends because its caller's
 * access changed, the list changes it listens for (`honoured`) before that.
 */
export function owesClosingResult(response: object, listenId: string | number, serverInfo: { name: string; version: string }, honoured: ListChanges): void {
  const stamp = { [SUBSCRIPTION_ID_META_KEY]: listenId };
  const listsChanged = Object.entries(LIST_CHANGES)
    .filter(([wanted]) => honoured[wanted as keyof ListChanges] === true)
    .map(([, method]) => frame({ method, params: { _meta: stamp } }))
    .join("");
  owed.set(response, { closing: frame({ id: listenId, result: { resultType: "complete", _meta: { ...stamp, [SERVER_INFO_META_KEY]: serverInfo } } }), listsChanged });
}

/**
 * Ends a long-lived response Manifold ends itself (its grant or key revoked, its access changed,
 * its consumer deleted, its caller giving way at the connection bound). A listen stream gets its
 * closing result, then its end (`listsChanged`: the list changes it listens for first, as its
 * caller's access changed them); before, every one was cut by a bare destroy(), which a client
 * takes for a drop and answers by reconnecting. The close is bounded: a stream not closed
 * `CLOSING_DEADLINE_MS` later (its client does not read) is cut. `release`: the caller closes the
 * connection at once (the connection bound), so the frames are handed to the kernel now, and what
 * it does not take is lost. Anything else held (a 2025 GET stream, a call) is cut as before.
 */
export function endHeld(response: Endable, { release = false, listsChanged = false } = {}): void {
  if (response.destroyed) return;
  const frames = owed.get(response);
  if (frames === undefined || !response.headersSent || response.writableEnded || !response.write || !response.end) return void response.destroy?.();
  response.write(listsChanged ? frames.listsChanged + frames.closing : frames.closing);
  response.end();
  if (release) return void response.socket?.uncork();
  const deadline = setTimeout(() => response.destroy?.(), CLOSING_DEADLINE_MS).unref();
  response.once("close", () => clearTimeout(deadline));
}
