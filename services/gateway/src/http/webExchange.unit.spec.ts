import type { FastifyReply, FastifyRequest } from "fastify";
import { createServer, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, test } from "vitest";
import { MAX_STREAM_BACKLOG_BYTES, sendWebResponse, webRequest } from "./webExchange.js";

const fastifyRequest = (host: string | undefined) => ({ method: "POST", url: "/mcp/vs?x=1", headers: { ...(host === undefined ? {} : { host }), accept: "application/json" } }) as unknown as FastifyRequest;

describe("the web Request the SDK transports read", () => {
  test("keeps the Host the request named, and its headers", () => {
    const web = webRequest(fastifyRequest("mcp.example.com:8443"));
    expect(web.url).toBe("http://mcp.example.com:8443/mcp/vs?x=1");
    expect(web.headers.get("host")).toBe("mcp.example.com:8443");
  });

  test.each(["127.0.0.1:99999", "127.0.0.1:abc", "[::1]x:1", "a b", "a@b", "user:pw@127.0.0.1", undefined])("a Host that makes no URL (%s) is no internal error: the request still reaches the SDK", (host) => {
    expect(webRequest(fastifyRequest(host)).url).toBe("http://gateway/mcp/vs?x=1");
  });
});

/** The part of a fastify reply `sendWebResponse` uses, around a real response. */
const replyOf = (raw: ServerResponse) => ({ raw, hijack() {}, send() { return this; } }) as unknown as FastifyReply;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const eventStream = (body: ReadableStream<Uint8Array>) => new Response(body, { headers: { "content-type": "text/event-stream" } });

/** A response whose client has already gone when the relay begins (it left while the request was being admitted). */
async function abandonedResponse(): Promise<ServerResponse> {
  return new Promise((resolve) => {
    const server = createServer((req, res) => {
      res.once("close", () => (server.close(), resolve(res)));
      req.socket.destroy();
    }).listen(0, "127.0.0.1", () => {
      request({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", method: "POST" }).on("error", () => undefined).end("{}");
    });
  });
}

test("a stream whose client left before it was relayed is cancelled at once: the SDK queues nothing for it", async () => {
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({ cancel: () => void (cancelled = true) });
  sendWebResponse(replyOf(await abandonedResponse()), eventStream(body), true);
  await sleep(50);
  // Before: nothing cancelled it, and every later notification queued in the SDK's stream.
  expect(cancelled).toBe(true);
});

test("a call's stream is not capped: a client reading late still gets its answer after more than the long-lived streams' backlog", async () => {
  const frame = new TextEncoder().encode(`event: message\ndata: ${"x".repeat(1_000)}\n\n`);
  const frames = Math.ceil((16 * MAX_STREAM_BACKLOG_BYTES) / frame.length);
  const server = createServer((_req, res) => {
    const body = new ReadableStream<Uint8Array>({
      async start(c) {
        for (let i = 0; i < frames; i++) {
          c.enqueue(frame);
          if (i % 500 === 0) await sleep(1);
        }
        c.enqueue(new TextEncoder().encode('event: message\ndata: {"result":"done"}\n\n'));
        c.close();
      },
    });
    sendWebResponse(replyOf(res), eventStream(body));
  }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  const text = await new Promise<string>((resolve) => {
    request({ port: (server.address() as AddressInfo).port, host: "127.0.0.1", method: "POST" }, (res) => {
      res.pause();
      let got = "";
      setTimeout(() => {
        res.on("data", (c: Buffer) => void (got += c.toString("latin1"))).on("close", () => resolve(got));
        res.resume();
      }, 1_000);
    }).end();
  });
  server.close();
  expect(text.length).toBeGreaterThan(16 * MAX_STREAM_BACKLOG_BYTES);
  expect(text).toContain('{"result":"done"}');
});
