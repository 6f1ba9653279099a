import type { FastifyReply, FastifyRequest } from "fastify";
import type { Writable } from "node:stream";

/** The fastify request as the web-standard `Request` the SDK transports read (the body is passed parsed). */
export function webRequest(request: FastifyRequest, signal?: AbortSignal): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const init = { method: request.method, headers, ...(signal ? { signal } : {}) };
  try {
    return new Request(`http://${request.headers.host ?? "gateway"}${request.url}`, init);
  } catch {
    // Where any Host is served (GATEWAY_ALLOWED_HOSTS `*`), one that makes no request URL (a bad
    // port, user info) stands in as `gateway`: the SDK reads the path, not the host.
    return new Request(`http://gateway${request.url}`, init);
  }
}

/**
 * What a client may leave unread on a long-lived stream before it is closed. Such a stream lives as
 * long as its client keeps it (a 2025 GET stream, a 2026-07-28 listen stream), and everything
 * written to a client that does not read stays in this process: an upstream sending resource
 * updates of many subscribed URIs grew a gateway without bound. A call's stream is not capped
 * here: its notifications have a budget of their own (`notificationBudget`), and its answer ends it.
 */
export const MAX_STREAM_BACKLOG_BYTES = 1024 * 1024;

/**
 * Sends an SDK transport's answer. An event stream (a 2025 GET stream, a 2026 listen stream, a
 * call with progress) may stay quiet for minutes: its headers go out now, so the client knows it
 * is open, and closing either side ends the other. Its events are taken from the SDK as they come
 * (so none wait in the web stream's queue, which has no bound); a `longLived` one is closed once
 * its client has left more than `MAX_STREAM_BACKLOG_BYTES` unread.
 */
export function sendWebResponse(reply: FastifyReply, response: Response, longLived = false): FastifyReply {
  if (!response.body || !response.headers.get("content-type")?.startsWith("text/event-stream")) return reply.send(response);
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(response.status, Object.fromEntries(response.headers));
  raw.flushHeaders();
  void relay(response.body.getReader(), raw, longLived ? MAX_STREAM_BACKLOG_BYTES : Infinity);
  return reply;
}

async function relay(reader: ReadableStreamDefaultReader<Uint8Array>, raw: Writable, maxBacklog: number): Promise<void> {
  // Whichever way the relay ends but the SDK's own end, the SDK's stream is cancelled: a client gone
  // (even before the relay began), a backlog too large, an error. Its queue would grow otherwise.
  const stop = () => void reader.cancel().catch(() => undefined);
  if (raw.destroyed) return stop();
  raw.once("close", stop);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      // Ended by Manifold meanwhile (`endHeld`: a listen stream's closing result was its last frame).
      if (raw.destroyed || raw.writableEnded) return stop();
      if (done) return void raw.end();
      if (raw.writableLength > maxBacklog) {
        raw.destroy();
        return stop();
      }
      raw.write(value);
    }
  } catch {
    raw.destroy();
    stop();
  }
}
