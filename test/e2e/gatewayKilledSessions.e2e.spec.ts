import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, type DisposableClient } from "../helpers/mcp.js";
import { spawnGateways } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// A gateway replica killed (SIGKILL) while it holds many 2025 sessions, every agent then moving to
// the surviving replica at once (sessionsAcrossReplicas.e2e covers one session): each session goes
// on there under its id (or is answered 404 so its agent initializes again; none hangs or gets a
// 5xx), and a change of its virtual server made while it moved reaches it on its new stream.
const SESSIONS = 60;

let nats: NatsServer;
let stack: Stack;
let gateways: Awaited<ReturnType<typeof spawnGateways>> | undefined;
let recording: RecordingUpstream;
let names: Record<string, string>;
let key: string;

beforeAll(async () => {
  nats = await startNats();
  // One consumer stands for a fleet of agents: the per-caller request budget is not what is measured.
  const env = { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "100000" };
  [stack, recording] = await Promise.all([startStack(nats.url, env), startRecordingUpstream()]);
  gateways = await spawnGateways(nats, env);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
  names = await createVirtualServer(stack, "shared", [{ upstream: "rec", tool: "echo" }]);
  await stack.admin.post("/v1/consumers", { name: "fleet" });
  await stack.admin.post("/v1/virtual-servers/shared/grants", { grantId: "fleet", subject: { consumer: "fleet" } });
  key = (await stack.admin.post("/v1/consumers/fleet/keys", {})).body.key;
});

afterAll(async () => {
  await gateways?.stop();
  await stack?.close();
  await recording?.close();
  await nats?.stop();
});

const waitUntil = async (done: () => boolean, ms: number) => {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
};

test(`a replica killed holding ${SESSIONS} sessions: each goes on at the other replica at once, and hears the list changes made as it moved`, { timeout: 90_000 }, async () => {
  const [killedPort, survivorPort] = gateways!.ports as [number, number];
  let port = killedPort;
  const routed = (url: string | URL, init?: RequestInit) => {
    const target = new URL(url);
    target.port = String(port);
    return fetch(target, init);
  };
  const agents: DisposableClient[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    agents.push(await connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared")), { fetch: routed, requestInit: { headers: { authorization: `Bearer ${key}` } } })));
  }
  await Promise.all(agents.map((a, i) => a.callTool({ name: names["rec/echo"]!, arguments: { message: `before ${i}` } })));
  const ids = agents.map((a) => (a.transport as StreamableHTTPClientTransport).sessionId);
  const heard = new Set<number>();
  agents.forEach((a, i) => a.setNotificationHandler(ToolListChangedNotificationSchema, () => void heard.add(i)));
  // Before the kill every agent hears a change on its stream.
  expect((await stack.admin.post(`/v1/virtual-servers/shared/tools/${names["rec/echo"]}/rename`, { newName: "echo_before" })).status).toBeLessThan(300);
  await waitUntil(() => heard.size === SESSIONS, 10_000);
  console.info(`gatewayKilledSessions: before the kill ${heard.size} of ${SESSIONS} heard tools/list_changed`);
  heard.clear();

  gateways!.processes[0]!.child.kill("SIGKILL");
  port = survivorPort;
  // Changed while the agents move: no replica holds their sessions or streams at this moment.
  const changedAt = Date.now();
  expect((await stack.admin.post(`/v1/virtual-servers/shared/tools/echo_before/rename`, { newName: "echo_moving" })).status).toBeLessThan(300);
  const movedAt = Date.now();
  const outcomes = await Promise.all(
    agents.map(async (a, i) => {
      const started = Date.now();
      try {
        const result = await a.callTool({ name: names["rec/echo"]!, arguments: { message: `after ${i}` } });
        return { ok: (result.content as { text: string }[])[0]?.text === `echo: after ${i}`, ms: Date.now() - started, error: "" };
      } catch (error) {
        return { ok: false, ms: Date.now() - started, error: (error as Error).message.slice(0, 120) };
      }
    }),
  );
  const all = Date.now() - movedAt;
  const slowest = Math.max(...outcomes.map((o) => o.ms));
  const failures = outcomes.filter((o) => !o.ok).map((o) => o.error);
  console.info(`gatewayKilledSessions: ${SESSIONS} sessions, ${SESSIONS - failures.length} went on, all answered in ${all} ms (slowest ${slowest} ms); failures: ${JSON.stringify(failures.slice(0, 3))}`);
  expect(failures).toEqual([]);
  expect(agents.map((a) => (a.transport as StreamableHTTPClientTransport).sessionId)).toEqual(ids);
  expect(all).toBeLessThan(3_000);

  // Their notification streams (GET) died with the replica: the SDK opens them again, now on the
  // survivor, about a second later, and hears there what changed meanwhile.
  await waitUntil(() => heard.size === SESSIONS, 10_000);
  console.info(`gatewayKilledSessions: ${heard.size} of ${SESSIONS} agents heard tools/list_changed for the change made as they moved, within ${Date.now() - changedAt} ms`);
  expect(heard.size).toBe(SESSIONS);
  heard.clear();
  expect((await stack.admin.post(`/v1/virtual-servers/shared/tools/echo_moving/rename`, { newName: "echo_after" })).status).toBeLessThan(300);
  await waitUntil(() => heard.size === SESSIONS, 10_000);
  expect(heard.size).toBe(SESSIONS);
  await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
});
