import { SSEClientTransport } from "@modelcontextprotocol/client";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, test } from "vitest";
import { endsWithStream, eventSourceOf, EVENT_SOURCE_VERIFIED_WITH } from "./sseEventSource.js";

// The real SDK class and its real EventSource; only the upstream is stood in for, by the `fetch`
// the transport is given for its event stream (no socket).

/** The installed @modelcontextprotocol/client, as "name version", read from its package.json. */
function installedClient(): string {
  let dir = dirname(createRequire(import.meta.url).resolve("@modelcontextprotocol/client"));
  while (!dir.endsWith(join("@modelcontextprotocol", "client"))) dir = dirname(dir);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name: string; version: string };
  return `${pkg.name} ${pkg.version}`;
}
const changed = (what: string) =>
  `${installedClient()}: ${what} (sseEventSource.ts was written against ${EVENT_SOURCE_VERIFIED_WITH}). ` +
  "A legacy SSE upstream's session would no longer end with its event stream: mend services/connector/src/sseEventSource.ts for this SDK version.";

/** A legacy SSE transport whose event stream names its endpoint and then ends when `end()` is called. */
function sseTransport() {
  let end = () => {};
  let opened = 0;
  const fetch = async () => {
    opened++;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("event: endpoint\ndata: /messages?sessionId=1\n\n"));
        end = () => controller.close();
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
  const transport = new SSEClientTransport(new URL("http://127.0.0.1:9/sse"), { eventSourceInit: { fetch } });
  return { transport, end: () => end(), opened: () => opened };
}

describe("the SDK's SSEClientTransport still holds its event stream where sseEventSource.ts reaches for it", () => {
  test("a started transport has its EventSource in the private `_eventSource`, with the SDK's `onerror` set", async () => {
    const { transport } = sseTransport();
    await transport.start();
    try {
      const source = eventSourceOf(transport);
      expect(source, changed("a started SSEClientTransport holds no EventSource (with close() and onerror) in its private `_eventSource`")).toBeDefined();
      expect(typeof source!.onerror, changed("the SDK no longer sets `onerror` on its EventSource, so wrapping it would not see the stream fail")).toBe("function");
    } finally {
      await transport.close();
    }
  });

  test("endsWithStream: the transport closes once its event stream ends, instead of the EventSource opening it again", async () => {
    const { transport, end, opened } = sseTransport();
    const closed = new Promise<void>((resolve) => (transport.onclose = resolve));
    await endsWithStream(transport).start();
    try {
      end();
      const outcome = await Promise.race([closed.then(() => "closed"), new Promise((r) => setTimeout(() => r("still open"), 2_000))]);
      expect(outcome, changed("the transport stayed open for 2 s after its event stream ended")).toBe("closed");
      expect(opened()).toBe(1);
    } finally {
      await transport.close();
    }
  });
});
