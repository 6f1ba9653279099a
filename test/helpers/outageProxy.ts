import { createServer, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface OutageProxy extends AsyncDisposable {
  readonly url: string;
  /** While set, every request is answered HTTP 502, as nginx answers when it cannot reach its upstream. */
  down: boolean;
  /** While set, the requests whose body it matches are answered 502, as nginx answers one request whose connection the upstream cut. */
  cuts: ((body: string) => boolean) | undefined;
  /** How many requests of this JSON-RPC method it answered 502 (while `down`). */
  refused(method: string): number;
  close(): Promise<void>;
}

/** The JSON-RPC method a request body names, if it is one. */
function methodOf(body: Buffer): string | undefined {
  try {
    const { method } = JSON.parse(body.toString()) as { method?: unknown };
    return typeof method === "string" ? method : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A reverse proxy in front of `target` (an MCP endpoint URL) that forwards every request and its
 * answer as they come (streams included), or, while `down`, answers each one 502 with an HTML page.
 * Streams opened before it went down are cut then, as they are when the upstream behind a proxy goes.
 * On `port` (a free one when 0), so a test can close it and start another on the same address.
 */
export async function startOutageProxy(target: string, port = 0): Promise<OutageProxy> {
  const to = new URL(target);
  const open = new Set<ServerResponse>();
  let down = false;
  const refused = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (down || proxy.cuts?.(body.toString())) {
        const method = methodOf(body) ?? req.method ?? "";
        refused.set(method, (refused.get(method) ?? 0) + 1);
        return void res.writeHead(502, { "content-type": "text/html" }).end("<html>502 Bad Gateway</html>");
      }
      const out = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: { ...req.headers, host: to.host } }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        open.add(res);
        res.on("close", () => open.delete(res));
        answer.pipe(res);
      });
      out.on("error", () => res.destroy());
      out.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  const close = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  const proxy: OutageProxy = {
    cuts: undefined,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${to.pathname}`,
    get down() {
      return down;
    },
    set down(value: boolean) {
      down = value;
      if (value) for (const res of open) res.destroy();
    },
    refused: (method) => refused.get(method) ?? 0,
    close,
    [Symbol.asyncDispose]: close,
  };
  return proxy;
}
