import type { FastifyReply, FastifyRequest } from "fastify";
import { Readable, pipeline } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";

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
 * Sends an SDK transport's answer. An event stream (a 2025 GET stream, a 2026 listen stream, a
 * call with progress) may stay quiet for minutes: its headers go out now, so the client knows it
 * is open, and closing either side ends the other.
 */
export function sendWebResponse(reply: FastifyReply, response: Response): FastifyReply {
  if (!response.body || !response.headers.get("content-type")?.startsWith("text/event-stream")) return reply.send(response);
  reply.hijack();
  reply.raw.writeHead(response.status, Object.fromEntries(response.headers));
  reply.raw.flushHeaders();
  pipeline(Readable.fromWeb(response.body as WebReadableStream), reply.raw, () => undefined);
  return reply;
}
