import type { Server } from "node:http";
import type { Socket } from "node:net";

/**
 * At most `max` connections on the public port, below the process's descriptors: one client
 * without credentials held 20,651 idle keep-alive connections (one `GET /healthz` each), the
 * process ran out of descriptors, another tenant's connections were reset at once and the gateway
 * could open nothing of its own (the bus, an identity provider). At the bound, a new connection
 * takes the place of the longest-open idle one (no answer under way); with none idle, it is refused.
 * Nothing is added per request: a connection's state is read only when the bound is reached.
 */
export function limitConnections(server: Server, max: number): void {
  // In the order they were accepted: the first idle one found is the longest open.
  const open = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    if (open.size >= max) {
      const idle = firstIdle(open);
      if (!idle) return void socket.destroy();
      open.delete(idle);
      idle.destroy();
    }
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  });
}

/** Node's http server sets `_httpMessage` on a socket while a response is under way on it. */
function firstIdle(open: Set<Socket>): Socket | undefined {
  for (const socket of open) if (!(socket as Socket & { _httpMessage?: unknown })._httpMessage) return socket;
  return undefined;
}
