import { serviceEntry, spawnService } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { busEnv, startNats, startStack, type Stack } from "../helpers/stack.js";

/** A gateway process stopped (SIGTERM, as Kubernetes and compose stop it) while a call runs. */
describe("a gateway stopped with a call in flight", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let slow: string;

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats.url), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    slow = (await createVirtualServer(stack, "patient", [{ upstream: "rec", tool: "slow" }]))["rec/slow"]!;
  });
  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("drains for GATEWAY_DRAIN_MS even past 10 s: the call is answered and the process exits 0", async () => {
    const port = await freePort();
    const gateway = spawnService("gateway", serviceEntry("gateway"), [], {
      ...busEnv(nats, "gateway"),
      LOG_LEVEL: "warn",
      GATEWAY_AUTH: "off",
      GATEWAY_PORT: String(port),
      GATEWAY_METRICS_PORT: String(await freePort()),
      GATEWAY_DRAIN_MS: "14000",
    });
    await using _stopped = gateway;
    await gateway.ready(`http://127.0.0.1:${port}/readyz`);
    await using client = await connectClient(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp/patient`)));
    const call = client.callTool({ name: slow, arguments: { ms: 11_000 } }, undefined, { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 500));
    const stopped = Date.now();
    // Before: the shutdown's forced exit (10 s) came before the drain (GATEWAY_DRAIN_MS) ended: exit code 1, the call cut.
    await gateway.stop(20_000);
    expect(await gateway.exited).toBe("exit code 0");
    expect(Date.now() - stopped).toBeGreaterThan(10_000);
    expect((await call).isError).toBeFalsy();
  }, 60_000);
});
