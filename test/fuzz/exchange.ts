import { Agent, request } from "node:http";

export interface HttpCase {
  /** What the case exercises, for the tallies. */
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  ms: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

/** One raw exchange; `undefined` status means the request did not complete within `timeoutMs`. */
export function exchange(baseUrl: string, c: HttpCase, timeoutMs = 5_000, fresh = false): Promise<HttpAnswer | { error: string; ms: number }> {
  const { hostname, port } = new URL(baseUrl);
  const started = performance.now();
  return new Promise((resolve) => {
    let req: ReturnType<typeof request>;
    try {
      req = request({ host: hostname, port, method: c.method, path: c.path, headers: fresh ? { ...c.headers, connection: "close" } : c.headers, agent: fresh ? false : agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - started }));
        res.on("error", (error) => resolve({ error: `response: ${error.message}`, ms: performance.now() - started }));
      });
    } catch (error) {
      // The client refused to send it (an invalid header character): not a server outcome.
      resolve({ error: `client: ${(error as Error).message}`, ms: 0 });
      return;
    }
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (error) => resolve({ error: error.message, ms: performance.now() - started }));
    req.end(c.body);
  });
}

/** Runs `cases` with `concurrency` in flight. */
export async function runAll<T>(cases: Iterable<T>, concurrency: number, run: (c: T) => Promise<void>): Promise<void> {
  const iterator = cases[Symbol.iterator]();
  const worker = async () => {
    for (let next = iterator.next(); !next.done; next = iterator.next()) await run(next.value);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
