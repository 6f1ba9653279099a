import type { JSONRPCMessage, Transport } from "@modelcontextprotocol/client";

type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** Requests remembered per session, past any bound a session's callers can reach (as `guardInbound`'s). */
const MAX_OPEN = 16_384;
/** Longer than any id the SDK writes; a tail past it is not read. */
const MAX_ID_TEXT = 64;

/** The JSON text of a request id, the key both a request and its cancellation are found by. */
const keyOf = (id: unknown): string => JSON.stringify(id);

const isRequest = (message: JSONRPCMessage): message is JSONRPCMessage & { method: string; id: string | number } =>
  "method" in message && "id" in message && message.id !== undefined;

const cancelledId = (message: JSONRPCMessage): unknown =>
  "method" in message && message.method === "notifications/cancelled" && !("id" in message) ? (message.params as { requestId?: unknown } | undefined)?.requestId : undefined;

/**
 * The id of a request as the SDK wrote its POST body: `{ ...request, jsonrpc, id }`, so the id is
 * its last member and `method` its first. Read from the tail, never parsed whole (a call's
 * arguments may be megabytes); a body written otherwise is taken for no request (still bounded).
 */
export function trailingRequestId(body: string): string | undefined {
  if (!body.startsWith('{"method":') || !body.endsWith("}")) return undefined;
  const at = body.lastIndexOf(',"id":', body.length - 2);
  if (at < 0 || body.length - at > MAX_ID_TEXT) return undefined;
  const id = body.slice(at + ',"id":'.length, -1);
  return /^(-?\d+|"[^"\\]*")$/.test(id) ? id : undefined;
}

/**
 * Ends the HTTP request of every request the SDK gives up on, and bounds the ones that carry only
 * notifications or answers. The SDK's transports hand each 2025-era request only their
 * transport-wide abort signal: a call, a listing or a ping that timed out (or was cancelled) is
 * answered `notifications/cancelled` but its POST stays open, and so does that notification's own
 * POST to an upstream that answers nothing, each holding a socket (a file descriptor of the
 * connector, a connection of the upstream) until undici's 300 s headers timeout. A hung upstream
 * held ~20 more in 15 s (`test/e2e/upstreamHangSockets.e2e.spec.ts`).
 * - Streamable HTTP: each request is sent with its own `requestSignal`, aborted when the SDK sends
 *   its cancellation (on timeout and on abort alike); the transport takes that abort for an
 *   intended one, so it neither reports an error nor opens the request's SSE stream again. A
 *   long-running call's stream lives as long as the call. A notification's or an answer's POST,
 *   which a server answers 202 at once, ends after `acceptMs`.
 * - Legacy SSE, which ignores `requestSignal` and answers on its GET stream: every POST ends after
 *   `acceptMs` (a server answers each 202 at once), and a request's POST at its cancellation.
 * A 2026-07-28 request is left alone: the SDK gives it a signal of its own and aborts it itself.
 */
export class AbandonedRequests {
  readonly #open = new Map<string, AbortController>();
  readonly #acceptMs: number;

  /** `acceptMs`: how long an upstream may take to accept a message it answers 202 (`CONNECT_TIMEOUT_MS`). */
  constructor(acceptMs: number) {
    this.#acceptMs = acceptMs;
  }

  /** Wraps the transport's `send` (and, at `start`, the SDK's `onmessage`: answered requests are forgotten). */
  follow(transport: Transport): void {
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      const cancelled = cancelledId(message);
      if (cancelled !== undefined) this.#abandon(keyOf(cancelled));
      // The SDK's own signal (2026-07-28), or a resumption on a GET: the SDK's to end.
      if (options?.requestSignal !== undefined || options?.resumptionToken !== undefined) return send(message, options);
      const requestSignal = isRequest(message) ? this.#signalOf(keyOf(message.id)) : AbortSignal.timeout(this.#acceptMs);
      return send(message, { ...options, requestSignal });
    };
    const start = transport.start.bind(transport);
    transport.start = async () => {
      const deliver = transport.onmessage;
      transport.onmessage = (message, extra) => {
        if (!("method" in message) && "id" in message) this.#open.delete(keyOf(message.id));
        deliver?.(message, extra);
      };
      await start();
    };
  }

  /**
   * For a legacy SSE transport's POSTs, which its `send` does not give a signal of their own: a
   * request's is found by its id (`follow` has seen it sent, and aborts it at its cancellation).
   */
  legacyPosts(fetch: Fetch): Fetch {
    return (url, init) => {
      if (init?.method !== "POST" || typeof init.body !== "string") return fetch(url, init);
      const request = trailingRequestId(init.body);
      const signals = [AbortSignal.timeout(this.#acceptMs), ...(request && this.#open.has(request) ? [this.#signalOf(request)] : []), ...(init.signal ? [init.signal] : [])];
      return fetch(url, { ...init, signal: AbortSignal.any(signals) });
    };
  }

  /** Requests sent and neither answered nor cancelled yet. */
  get open(): number {
    return this.#open.size;
  }

  #signalOf(key: string): AbortSignal {
    let controller = this.#open.get(key);
    if (!controller) {
      controller = new AbortController();
      this.#open.set(key, controller);
      // Requests never answered nor cancelled (`initialize`) are forgotten oldest first.
      if (this.#open.size > MAX_OPEN) this.#open.delete(this.#open.keys().next().value!);
    }
    return controller.signal;
  }

  #abandon(key: string): void {
    this.#open.get(key)?.abort(new Error("the request was cancelled"));
    this.#open.delete(key);
  }
}
