import type { IncomingMessage, ServerResponse } from "node:http";

const HOP_REQUEST_HEADERS = new Set(["host", "content-length", "connection"]);
const HOP_ANSWER_HEADERS = new Set(["content-length", "content-encoding", "transfer-encoding", "connection"]);

/**
 * For the suites' man-in-the-middle upstreams: passes a request (its body already read) on to
 * `target`, same path, and its answer back, streamed as it comes (a listen stream stays open); or,
 * with `edit`, rewritten first: an event stream event by event, anything else read whole.
 */
export async function forward(target: string, req: IncomingMessage, body: Buffer, res: ServerResponse, edit?: (text: string) => string): Promise<void> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string" && !HOP_REQUEST_HEADERS.has(k)) headers[k] = v;
  const answer = await fetch(new URL(req.url!, target), { method: req.method, headers, body: req.method === "GET" || req.method === "DELETE" ? undefined : body });
  const out: Record<string, string> = {};
  answer.headers.forEach((v, k) => {
    if (!HOP_ANSWER_HEADERS.has(k)) out[k] = v;
  });
  res.writeHead(answer.status, out);
  if (edit && answer.body && out["content-type"]?.startsWith("text/event-stream")) {
    // An event stream is edited event by event as it comes: a session's GET stream never ends.
    let pending = "";
    for await (const chunk of answer.body.pipeThrough(new TextDecoderStream())) {
      const events = (pending + chunk).split("\n\n");
      pending = events.pop()!;
      for (const event of events) res.write(`${edit(event)}\n\n`);
    }
    res.end(pending && edit(pending));
    return;
  }
  if (edit) {
    const text = await answer.text();
    res.end(text ? edit(text) : text);
    return;
  }
  if (answer.body) for await (const chunk of answer.body) res.write(chunk);
  res.end();
}
