import { describe, expect, test } from "vitest";
import { boundedBody, boundedEvents } from "./boundedAnswers.js";

/** `chunks` through `transform`, as text (or the error the stream ended with). */
async function through(transform: TransformStream<Uint8Array, Uint8Array>, chunks: string[]): Promise<string> {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(Buffer.from(chunk));
      controller.close();
    },
  });
  let text = "";
  try {
    for await (const piece of source.pipeThrough(transform)) text += Buffer.from(piece).toString();
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
  return text;
}

const event = (data: string, end = "\n") => `data: ${data}${end}${end}`;

describe("an SSE stream bounded per event", () => {
  test.each([
    ["LF", "\n"],
    ["CRLF", "\r\n"],
    ["CR", "\r"],
  ])("events within the bound pass whole and in order; comments and empty events are counted and left out (%s line endings, any chunking)", async (_name, end) => {
    const events = `${event("one", end)}event: message${end}${event("two", end)}`;
    const stream = `: keep-alive${end}${end}${end}${event("one", end)}event: message${end}: a comment${end}${event("two", end)}`;
    for (const size of [1, 2, 3, 7, stream.length]) {
      const chunks = Array.from({ length: Math.ceil(stream.length / size) }, (_, i) => stream.slice(i * size, (i + 1) * size));
      let unasked = 0;
      expect(await through(boundedEvents(64, () => (unasked++, true)), chunks)).toBe(events.replace("event: message", `event: message${end}: a comment`));
      // The keep-alive line, its empty event, the empty event after it, the comment line.
      expect(unasked).toBe(4);
    }
  });

  test("once the session's budget refuses one, the stream ends: nothing more of it is read", async () => {
    let left = 3;
    const chunks = [": 1\n", ": 2\n", event("kept"), ": 3\n", ": 4\n", event("never")];
    expect(await through(boundedEvents(64, () => left-- > 0), chunks)).toBe("error: the upstream sent more than a session may unasked");
  });

  test.each([
    ["LF", "\n"],
    ["CRLF", "\r\n"],
  ])("an event past the bound is dropped whole, and the stream goes on (%s)", async (_name, end) => {
    const big = event("x".repeat(500), end);
    const chunks = [event("before", end), big.slice(0, 100), big.slice(100, 300), big.slice(300), event("after", end)];
    expect(await through(boundedEvents(64), chunks)).toBe(event("before", end) + event("after", end));
  });

  test("a CRLF split between chunks is one line ending, not a blank line", async () => {
    const chunks = ["data: a\r", "\ndata: b\r", "\n\r", "\n"];
    expect(await through(boundedEvents(64), chunks)).toBe("data: a\r\ndata: b\r\n\r\n");
  });
});

describe("a JSON body bounded", () => {
  test("within the bound it passes; past it the body fails as payload_too_large", async () => {
    expect(await through(boundedBody(10), ["{\"a\":", "1}"])).toBe('{"a":1}');
    expect(await through(boundedBody(10), ["{\"a\":\"", "xxxxxxxxxx", "\"}"])).toBe("error: the answer is more than 10 bytes");
  });
});
