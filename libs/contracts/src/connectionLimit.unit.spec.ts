import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { expect, test } from "vitest";
import { limitConnections, type ConnectionShed } from "./connectionLimit.js";

/** A server at `max` connections whose handler answers only when told, telling what the bound did. */
async function serve(max: number) {
  const shed: ConnectionShed[] = [];
  const waiting: ServerResponse[] = [];
  const server = createServer((_req: IncomingMessage, res: ServerResponse) => void waiting.push(res));
  limitConnections(server, max, { onShed: (what) => shed.push(what) });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const close = () => {
    for (const res of waiting) res.end();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return { shed, waiting, port, close };
}

/** A GET on a connection of its own: its status, or the socket error that ended it. */
const get = (port: number) =>
  new Promise<string>((resolve) => {
    const req = request({ port, host: "127.0.0.1", agent: false }, (res) => resolve(String(res.statusCode)));
    req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    req.end();
  });

test("at the bound a silent connection gives way to a new one (replaced); with every connection answering, the new one is refused", async () => {
  const s = await serve(1);
  try {
    const silent = connect(s.port, "127.0.0.1");
    const closed = new Promise((resolve) => silent.once("close", resolve));
    await new Promise((resolve) => silent.once("connect", resolve));
    const answered = get(s.port);
    await closed;
    expect(s.shed).toEqual(["replaced"]);
    // That request is being answered: nothing may give way to the next connection.
    while (s.waiting.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await get(s.port)).toMatch(/ECONNRESET|EPIPE|socket hang up/);
    expect(s.shed).toEqual(["replaced", "refused"]);
    s.waiting[0]!.end("ok");
    expect(await answered).toBe("200");
  } finally {
    await s.close();
  }
});
