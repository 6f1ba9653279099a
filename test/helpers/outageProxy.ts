import { createServer, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface OutageProxy extends AsyncDisposable {
  readonly url: string;
  /** While set, every request is answered HTTP 502, as nginx answers when it cannot reach its upstream. */
  down: boolean;
  close(): Promise<void>;
}

/**
 * A reverse proxy in front of `target` (an MCP endpoint URL) that forwards every request and its
 * answer as they come (streams included), or, while `down`, answers each one 502 with an HTML page.
 * Streams opened before it went down are cut then, as they are when the upstream behind a proxy goes.
 */
export async function startOutageProxy(target: string): Promise<OutageProxy> {
  const to = new URL(target);
  const open = new Set<ServerResponse>();
  let down = false;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      if (down) return void res.writeHead(502, { "content-type": "text/html" }).end("<html>502 Bad Gateway</html>");
      const out = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: { ...req.headers, host: to.host } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        open.add(res);
        res.on("close", () => open.delete(res));
        answer.pipe(res);
      });
      out.on("error", () => res.destroy());
      out.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const close = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${to.pathname}`,
    get down() {
      return down;
    },
    set down(value: boolean) {
      down = value;
      if (value) for (const res of open) res.destroy();
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
