import type { Server } from "node:http";
import type { Socket } from "node:net";

/** What the bound did to make room: a new connection `refused`, or an older one `replaced` by it. */
export type ConnectionShed = "refused" | "replaced";

export interface ConnectionLimitOptions {
  /** An older connection whose holder has more than its share of long-lived streams, when there is one (the gateway's). */
  yieldStream?: () => Socket | undefined;
  /** Told each time the bound acts (a counter): the bound is reached only under load, so it costs nothing otherwise. */
  onShed?: (what: ConnectionShed) => void;
  /** How long an answer may sit written but untaken by its client before its connection is closed (`dropUnread`); 30 s by default. */
  unreadTimeoutMs?: number;
}

/**
 * At most `max` connections on a port, below the process's descriptors: one client without
 * credentials held 20,651 idle keep-alive connections on the gateway's public port (one
 * `GET /healthz` each), the process ran out of descriptors, another tenant's connections were
 * reset at once and the gateway could open nothing of its own (the bus, an identity provider);
 * 1,501 silent connections did the same to a registry with 1,024 descriptors. At the bound, a new connection
 * takes the place of the longest-open idle one (no answer under way) or, with none idle, of the
 * longest-open one whose request body is still arriving: one client's bodies sent a byte a second
 * held every connection busy until the request timeout, and every new one was refused. Then the
 * longest-open one whose answer is all written but not yet taken by its client: 12 tool lists of
 * 6 MB a client never read held every connection of a port bounded to 12 for good, and another
 * tenant's new connections were reset (edgeUnreadAnswers.e2e). With none of
 * these, the caller holding the most long-lived streams gives up its oldest, if it holds more
 * than its share (`yieldStream`: about six callers' streams held every place). With none, it is
 * refused. Nothing is added per request: a connection's state is read only when the bound is reached.
 */
export function limitConnections(server: Server, max: number, { yieldStream = () => undefined, onShed, unreadTimeoutMs = 30_000 }: ConnectionLimitOptions = {}): void {
  // In the order they were accepted: the first one found is the longest open.
  const open = new Set<Socket>();
  // Over TLS the bound counts the TCP connections as they are accepted (before any handshake), and
  // reads the HTTP state off the TLS socket each one carries once its handshake is done.
  server.on("secureConnection", (secure: Socket & { _parent?: Socket | null }) => {
    if (secure._parent) secured.set(secure._parent, secure);
  });
  server.on("connection", (socket: Socket) => {
    if (open.size >= max) {
      const yielding = first(open, isIdle) ?? first(open, isReceiving) ?? first(open, isUnread) ?? yieldStream();
      if (!yielding) {
        socket.destroy();
        return onShed?.("refused");
      }
      // A stream's socket, over TLS, is the TLS socket: its TCP connection is what is counted.
      open.delete((yielding as Socket & { _parent?: Socket | null })._parent ?? yielding);
      yielding.destroy();
      onShed?.("replaced");
    }
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  });
  dropUnread(server, open, unreadTimeoutMs);
}

/**
 * Closes connections whose answer has sat written but untaken (`isUnread`) for `timeoutMs` with
 * none of it taken meanwhile: Node holds what the kernel cannot, and below the bound nothing else
 * lets it go (each of 12 unread tool lists held ~2 MB of the gateway's memory for good). So is an
 * answer not ended yet whose bytes wait the same way: one piped with backpressure (a 2025 batch's
 * event stream) keeps the rest in its source, and 4 such answers left unread kept their
 * connections for good (a batch of 40 lists ~240 MB; edgeUnreadAnswers.e2e). Looked at every
 * quarter of `timeoutMs` over the open connections, not per request.
 */
function dropUnread(server: Server, open: ReadonlySet<Socket>, timeoutMs: number): void {
  /** When each unread answer was first seen, and how much of it was still to go then. */
  const seen = new WeakMap<Socket, { since: number; pending: number }>();
  const sweep = () => {
    const now = Date.now();
    for (const socket of open) {
      const http = httpOf(socket);
      const pending = http.writableLength + (http === socket ? 0 : socket.writableLength);
      if (!isUnread(socket) && !(http._httpMessage && pending > 0)) continue;
      const last = seen.get(socket);
      if (!last || pending < last.pending) seen.set(socket, { since: now, pending });
      else if (now - last.since >= timeoutMs) socket.destroy();
    }
  };
  const timer = setInterval(sweep, Math.max(100, timeoutMs / 4)).unref();
  server.once("close", () => clearInterval(timer));
}

type HttpSocket = Socket & { _httpMessage?: { writableEnded?: boolean; writableFinished?: boolean } | null; parser?: { incoming?: { complete?: boolean } | null } | null };

const first = (open: Set<Socket>, matches: (socket: Socket) => boolean): Socket | undefined => {
  for (const socket of open) if (matches(socket)) return socket;
  return undefined;
};
/** Each accepted TCP connection's TLS socket, once its handshake is done (HTTPS). */
const secured = new WeakMap<Socket, HttpSocket>();
const httpOf = (socket: Socket): HttpSocket => secured.get(socket) ?? socket;
/** Node's http server sets `_httpMessage` on a socket while a response is under way on it (a handshake not done is idle). */
const isIdle = (socket: Socket) => !httpOf(socket)._httpMessage;
/**
 * Its answer is ended (the handler wrote all of it) but not finished (not all handed to the kernel):
 * its client is not reading. A stream still being written is not ended.
 */
const isUnread = (socket: Socket) => {
  const response = httpOf(socket)._httpMessage;
  return response?.writableEnded === true && response.writableFinished === false;
};
/** The request its parser is reading has not all arrived: its handler waits for the body. */
const isReceiving = (socket: Socket) => httpOf(socket).parser?.incoming?.complete === false;
