import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { busOptionsOf, connectBus, type NatsConnection } from "@manifold/bus";
import { BusEnv, Subjects, parseEnv } from "@manifold/contracts";
import { freePort, groupIdentity, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A connector deployed for some upstreams (`CONNECTOR_UPSTREAMS`) under an identity of its own
 * (`manifold nats keys --connector-group`): it serves those upstreams' calls, progress and health
 * with the permissions nats-server gives that identity, and nothing of any other upstream.
 */
describe("a connector group's own identity", () => {
  const group = { name: "recs", upstreams: ["rec"] };
  const violations: string[] = [];
  let nats: NatsServer;
  let stack: Stack;
  let rec: RecordingUpstream;
  let connector: ServiceProcess;

  beforeAll(async () => {
    nats = await startNats({ connectorGroups: [group], onLog: (line) => void (/Violation/.test(line) && violations.push(line)) });
    [stack, rec] = await Promise.all([startStack(nats.url, {}, { connector: false }), startRecordingUpstream()]);
    const port = await freePort();
    connector = spawnService("connector-recs", serviceEntry("connector"), [], {
      ...busEnv(nats, groupIdentity(group.name)),
      CONNECTOR_UPSTREAMS: "rec",
      CONNECTOR_PORT: String(port),
      LOG_LEVEL: "warn",
    });
    await connector.ready(`http://127.0.0.1:${port}/readyz`);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } });
  });

  afterAll(async () => {
    await connector?.stop();
    await stack?.close();
    await rec?.close();
    await nats?.stop();
  });

  test("serves its upstream's discovery, calls, progress and health without a permission refused", async () => {
    const names = await createVirtualServer(stack, "grouped", [
      { upstream: "rec", tool: "echo" },
      { upstream: "rec", tool: "slow" },
    ]);
    await using agent = await connectHttp(stack.mcpUrl("grouped"));
    const echoed = await agent.callTool({ name: names["rec/echo"]!, arguments: { message: "hi" } });
    expect(echoed.content).toEqual([{ type: "text", text: "echo: hi" }]);
    const progress: unknown[] = [];
    await agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 40, steps: 2 } }, undefined, { onprogress: (p) => void progress.push(p) });
    expect(progress).toHaveLength(2);
    const health = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/upstreams/rec");
      return body.health?.status === "up" ? body.health : undefined;
    });
    expect(health.status).toBe("up");
    expect(violations).toEqual([]);
  });

  test("cannot take another upstream's calls or speak for it", async () => {
    // No connector of its own runs: the group's connector does not take its calls.
    const operator = await connectAs(nats, "operator");
    try {
      const call = await operator.request(Subjects.upstreamCall("other"), "{}", { timeout: 2_000 }).then(() => "answered", (error: Error) => error.message);
      expect(call).toMatch(/no responders/);
    } finally {
      await operator.close();
    }

    const nc: NatsConnection = await connectBus({
      ...busOptionsOf(parseEnv(BusEnv, busEnv(nats, groupIdentity(group.name)))),
      role: "connector",
      name: "group-probe",
      logger: createLogger({ component: "group-probe", level: "silent" }),
    });
    try {
      const before = violations.length;
      nc.subscribe(Subjects.upstreamCall("other"), { callback: () => undefined });
      nc.publish(Subjects.upstreamHealth("other", "forged"), "{}");
      nc.publish(Subjects.registryDiscovered("other"), "{}");
      await nc.flush();
      const refused = await eventually(() => (violations.length >= before + 3 ? violations.slice(before) : undefined));
      expect(refused.join("\n")).toContain(`Subscription Violation`);
      expect(refused.filter((line) => line.includes("Publish Violation"))).toHaveLength(2);
      expect(refused.join("\n")).toContain(Subjects.upstreamCall("other"));
    } finally {
      await nc.close();
    }
  });
});
