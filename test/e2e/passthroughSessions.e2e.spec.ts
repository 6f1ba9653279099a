import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/** A caller's own upstream session (its pass-through credentials) while one of its calls runs long. */
describe("a pass-through session with a call running", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let slow: string;

  beforeAll(async () => {
    nats = await startNats();
    // Idle after one second: a call of three is three sweeps long.
    [stack, recording] = await Promise.all([startStack(nats.url, { CONNECTOR_USER_SESSION_IDLE_MS: "1000" }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    slow = (await createVirtualServer(stack, "long", [{ upstream: "rec", tool: "slow" }]))["rec/slow"]!;
  });
  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("is not idle: the call outlives the idle time and is answered on the caller's session", async () => {
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl("long")), {
      requestInit: { headers: { "x-manifold-upstream-headers": JSON.stringify({ rec: { Authorization: "Bearer alice-own-token" } }) } },
    });
    await using agent = await connectClient(transport);
    // Before: the sweep ended the session under the call (a DELETE upstream), and the call failed.
    const result = await agent.callTool({ name: slow, arguments: { ms: 3_500, tag: "outlives" } }, undefined, { timeout: 15_000 });
    expect(result.isError, JSON.stringify(result)).toBeFalsy();
    const call = recording.calls.find((c) => c.tool === "slow" && (c.arguments as { tag?: string }).tag === "outlives")!;
    expect(call.headers.authorization).toBe("Bearer alice-own-token");
    expect(recording.cancelled).not.toContain("outlives");
  }, 30_000);
});
