import type { Server } from "node:http";
import type { Socket } from "node:net";

/**
 * At most `max` connections on the public port, below the process's descriptors: one client
 * without credentials held 20,651 idle keep-alive connections (one `GET /healthz` each), the
 * process ran out of descriptors, another tenant's connections were reset at once and the gateway
 * could open nothing of its own (the bus, an identity provider). At the bound, a new connection
 * takes the place of the longest-open idle one (no answer under way) or, with none idle, of the
 * longest-open one whose request body is still arriving: one client's bodies sent a byte a second
 * held every connection busy until the request timeout, and every new one was refused. With
 * neither, the caller holding the most long-lived streams gives up its oldest, if it holds more
 * than its share (`yieldStream`: about six callers' streams held every place). With none, it is
 * refused. Nothing is added per request: a connection's state is read only when the bound is reached.
 */
export function limitConnections(server: Server, max: number, yieldStream: () => Socket | undefined = () => undefined): void {
  // In the order they were accepted: the first one found is the longest open.
  const open = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    if (open.size >= max) {
      const yielding = first(open, isIdle) ?? first(open, isReceiving) ?? yieldStream();
      if (!yielding) return void socket.destroy();
      open.delete(yielding);
      yielding.destroy();
    }
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  });
}

type HttpSocket = Socket & { _httpMessage?: unknown; parser?: { incoming?: { complete?: boolean } | null } | null };

const first = (open: Set<Socket>, matches: (socket: HttpSocket) => boolean): Socket | undefined => {
  for (const socket of open) if (matches(socket)) return socket;
  return undefined;
};
/** Node's http server sets `_httpMessage` on a socket while a response is under way on it. */
const isIdle = (socket: HttpSocket) => !socket._httpMessage;
/** The request its parser is reading has not all arrived: its handler waits for the body. */
const isReceiving = (socket: HttpSocket) => socket.parser?.incoming?.complete === false;

/**
 * The long-lived streams a caller keeps however full the replica is: a 64th of its connections
 * (128 of 8,192). Past it, at the bound, its oldest give way to new connections; within it, none
 * do, so filling a replica with streams no one can push out takes 64 callers, each granted.
 */
export const streamShare = (maxConnections: number): number => Math.max(1, Math.floor(maxConnections / 64));
