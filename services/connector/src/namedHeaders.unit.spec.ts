import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool, type Dispatcher } from "undici";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { NamedHeaders } from "./namedHeaders.js";

const NAMES = ["content-type", "retry-after"] as const;
const BODY = "x".repeat(200_000);

/** What a handler saw of one response. */
interface Seen {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  ended: boolean;
  error: Error | undefined;
}

/** A handler of undici's current API, recording; `onData` may pause, resume or abort through its controller. */
function recorder(onData?: (controller: Dispatcher.DispatchController, seen: Seen) => void): { handler: Dispatcher.DispatchHandler; done: Promise<Seen> } {
  const seen: Seen = { status: 0, headers: {}, body: "", ended: false, error: undefined };
  let settle!: (s: Seen) => void;
  const done = new Promise<Seen>((r) => (settle = r));
  const handler: Dispatcher.DispatchHandler = {
    onRequestStart: () => undefined,
    onResponseStart: (_c, status, headers) => {
      seen.status = status;
      seen.headers = { ...headers };
    },
    onResponseData: (controller, chunk) => {
      seen.body += chunk.toString();
      onData?.(controller, seen);
    },
    onResponseEnd: () => {
      seen.ended = true;
      settle(seen);
    },
    onResponseError: (_c, error) => {
      seen.error = error;
      settle(seen);
    },
  };
  return { handler, done };
}

describe("NamedHeaders, undici's core hooks in front of a handler of its current API (a real Pool and server)", () => {
  let server: Server;
  let pool: Pool;
  beforeAll(async () => {
    server = createServer((req, res) => {
      res.writeHead(429, [
        ["Content-Type", "application/json"],
        ["Retry-After", "3"],
        ["X-Other", "not wanted"],
        ["retry-after", "4"],
      ]);
      res.end(req.url === "/big" ? BODY : "{}");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    await pool.close();
    await new Promise((r) => server.close(r));
  });

  test("hands the named headers as undici's own adapter hands them (a repeated one as a list), and the body", async () => {
    const own = recorder();
    pool.dispatch({ method: "GET", path: "/" }, own.handler);
    const named = recorder();
    pool.dispatch({ method: "GET", path: "/" }, new NamedHeaders(named.handler, NAMES));
    const [a, b] = await Promise.all([own.done, named.done]);
    expect(b).toEqual({ ...a, headers: { "content-type": a.headers["content-type"], "retry-after": a.headers["retry-after"] } });
    expect(b.headers).toEqual({ "content-type": "application/json", "retry-after": ["3", "4"] });
  });

  test("a paused response waits for resume; an abort ends the request with its reason", async () => {
    const paused = recorder((controller) => {
      if (controller.paused) return;
      controller.pause();
      setTimeout(() => controller.resume(), 20);
    });
    pool.dispatch({ method: "GET", path: "/big" }, new NamedHeaders(paused.handler, NAMES));
    expect((await paused.done).body).toBe(BODY);

    const reason = new Error("enough");
    const aborted = recorder((controller) => controller.abort(reason));
    pool.dispatch({ method: "GET", path: "/big" }, new NamedHeaders(aborted.handler, NAMES));
    const seen = await aborted.done;
    expect(seen.error).toBe(reason);
    expect(seen.ended).toBe(false);
  });

  test("a refused connection reaches the handler as an error", async () => {
    const closed = new Pool("http://127.0.0.1:1");
    const refused = recorder();
    closed.dispatch({ method: "GET", path: "/" }, new NamedHeaders(refused.handler, NAMES));
    expect((await refused.done).error).toBeInstanceOf(Error);
    await closed.close();
  });
});
