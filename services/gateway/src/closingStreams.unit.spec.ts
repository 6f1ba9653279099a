import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, test } from "vitest";
import { CLOSING_DEADLINE_MS, endHeld, owesClosingResult } from "./closingStreams.js";

/** A real listen-like event stream on a real socket, and the client's side of it. */
async function openStream(): Promise<{ response: ServerResponse; client: IncomingMessage; close: () => void }> {
  let response!: ServerResponse;
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.flushHeaders();
    response = res;
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  const client = await new Promise<IncomingMessage>((resolve) => request({ port, host: "127.0.0.1", method: "POST", agent: false }, resolve).end());
  return { response, client, close: () => server.close() };
}

describe("a stream Manifold ends (endHeld)", () => {
  test("a client that reads gets the closing result, then the response's end", async () => {
    const { response, client, close } = await openStream();
    let text = "";
    client.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
    const ended = new Promise<boolean>((r) => client.on("close", () => r(client.complete)));
    owesClosingResult(response, 7, { name: "manifold-x", version: "1" }, { toolsListChanged: true });
    endHeld(response);
    expect(await ended).toBe(true);
    expect(JSON.parse(text.split("data: ")[1]!)).toEqual({
      jsonrpc: "2.0",
      id: 7,
      result: { resultType: "complete", _meta: { "io.modelcontextprotocol/subscriptionId": 7, "io.modelcontextprotocol/serverInfo": { name: "manifold-x", version: "1" } } },
    });
    close();
  });

  test("a client that does not read holds the close no longer than the deadline", async () => {
    const { response, client, close } = await openStream();
    client.pause();
    // Enough that the kernel's buffers fill and Node holds the rest: the closing frame cannot be handed over.
    while (response.write(Buffer.alloc(1 << 20, 97))) await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 8; i++) response.write(Buffer.alloc(1 << 20, 97));
    owesClosingResult(response, "s", { name: "manifold-x", version: "1" }, {});
    const unwritten = response.writableLength;
    const started = Date.now();
    const closed = new Promise<void>((r) => response.once("close", () => r()));
    endHeld(response);
    await closed;
    const took = Date.now() - started;
    const figures = `closed ${took} ms after it was ended (deadline ${CLOSING_DEADLINE_MS} ms), ${unwritten} bytes unread then`;
    expect(unwritten, figures).toBeGreaterThan(0);
    expect(response.destroyed, figures).toBe(true);
    expect(took, figures).toBeGreaterThanOrEqual(CLOSING_DEADLINE_MS - 50);
    expect(took, figures).toBeLessThan(CLOSING_DEADLINE_MS + 500);
    client.destroy();
    close();
  });

  test("a response owed nothing (a 2025 GET stream) is cut at once, as before", async () => {
    const { response, client, close } = await openStream();
    const ended = new Promise<boolean>((r) => client.on("close", () => r(client.complete)));
    client.resume();
    endHeld(response);
    expect(response.destroyed).toBe(true);
    expect(await ended).toBe(false);
    close();
  });
});
