import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRetryZeroUpstream, type RetryZeroUpstream } from "../fixtures/retryZeroUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

describe("an upstream whose GET stream asks for reconnection without pause", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RetryZeroUpstream;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url), startRetryZeroUpstream()]);
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("attack: `retry: 0` on a stream that ends at once makes the connector reconnect a few times, paced, not in a loop", async () => {
    await registerUpstreams(stack, { name: "looping", transport: { type: "streamable-http", url: upstream.url } });
    const names = await createVirtualServer(stack, "loop", [{ upstream: "looping", tool: "echo" }]);
    const start = upstream.gets();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    // Before: thousands of GETs in these 3 s (the server's retry, and a count the SDK starts over at every normal end).
    expect(upstream.gets() - start).toBeLessThanOrEqual(4);
    // The upstream is served meanwhile.
    await using agent = await connectHttp(stack.mcpUrl("loop"));
    expect((await agent.callTool({ name: names["looping/echo"]!, arguments: {} })).content).toEqual([{ type: "text", text: "ok" }]);
  });
});
