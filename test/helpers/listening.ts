import type { Server } from "node:http";
import type { AddressInfo } from "node:net";

/** An upstream fixture's HTTP server listening on a free loopback port, at `/mcp`; `close` ends its open connections too. */
export async function listening(server: Server): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}
