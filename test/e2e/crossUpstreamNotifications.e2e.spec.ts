import { busOptionsOf, connectBus, type NatsConnection } from "@manifold/bus";
import { BusEnv, BusHeader, Subjects, parseEnv } from "@manifold/contracts";
import { groupIdentity, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { busEnv, connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// A connector deployed for some upstreams (`CONNECTOR_UPSTREAMS`, its own identity) may publish a
// call's progress, log messages, task statuses and heartbeats. Those subjects were shared by every
// upstream: one compromised connector for `rec` could publish into a call on `other`, whose subject
// it can predict (nats.js inbox ids are a random prefix and a sequence that steps by 33–333; the
// subjects of its own calls show both) or read off the calls its upstream gets. Its log messages
// reached another tenant's agent as the upstream's own words, its heartbeats kept a call on a dead
// connector waiting. Here the subjects are read by an operator identity, standing in for the guess.

const GROUP = { name: "recs", upstreams: ["rec"] };
const FORGED = "forged by another upstream's connector";

let nats: NatsServer;
let stack: Stack;
let rec: RecordingUpstream;
let other: RecordingUpstream;
let spy: NatsConnection;
let attacker: NatsConnection;
const violations: string[] = [];

beforeAll(async () => {
  nats = await startNats({ connectorGroups: [GROUP], onLog: (line) => void (/Violation/.test(line) && violations.push(line)) });
  [stack, rec, other] = await Promise.all([startStack(nats.url), startRecordingUpstream("rec"), startRecordingUpstream("other")]);
  await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: rec.url } }, { name: "other", transport: { type: "streamable-http", url: other.url } });
  spy = await connectAs(nats, "operator", "spy");
  attacker = await connectBus({
    ...busOptionsOf(parseEnv(BusEnv, busEnv(nats, groupIdentity(GROUP.name)))),
    role: "connector",
    name: "compromised-rec-connector",
    logger: createLogger({ component: "attacker", level: "silent" }),
  });
});

afterAll(async () => {
  await attacker?.close();
  await spy?.close();
  await stack?.close();
  await Promise.all([rec?.close(), other?.close()]);
  await nats?.stop();
});

test("attack: a connector for one upstream cannot put progress, log messages or heartbeats into a call on another", async () => {
  const names = await createVirtualServer(stack, "victim", [{ upstream: "other", tool: "slow" }]);
  await using agent = await connectHttp(stack.mcpUrl("victim"));
  const logs: unknown[] = [];
  agent.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params.data));
  await agent.setLoggingLevel("debug");
  // The call's subjects, as the other upstream's connector received them.
  const seen = new Promise<{ progress: string; log: string; beat: string }>((resolve) => {
    const sub = spy.subscribe(Subjects.upstreamCall("other"), {
      callback: (_err, msg) => {
        const progress = msg.headers?.get(BusHeader.progressSubject);
        const log = msg.headers?.get(BusHeader.logSubject);
        const beat = msg.headers?.get(BusHeader.heartbeat);
        if (progress && log && beat) {
          sub.unsubscribe();
          resolve({ progress, log, beat });
        }
      },
    });
  });
  await spy.flush();
  const progress: string[] = [];
  const call = agent.callTool({ name: names["other/slow"]!, arguments: { ms: 1_500, steps: 3 } }, undefined, { onprogress: (p) => void progress.push(p.message ?? "") });
  const subjects = await seen;
  for (let i = 0; i < 5; i++) {
    attacker.publish(subjects.progress, JSON.stringify({ progress: 99, total: 100, message: FORGED }));
    attacker.publish(subjects.log, JSON.stringify({ level: "error", data: FORGED }));
    attacker.publish(subjects.beat);
  }
  await attacker.flush().catch(() => undefined);
  await call;
  await new Promise((r) => setTimeout(r, 200));
  // The upstream's own progress arrived; nothing the other upstream's connector sent did.
  expect(progress.length).toBeGreaterThan(0);
  expect(progress).not.toContain(FORGED);
  expect(logs).not.toContain(FORGED);
  // nats-server refused the publishes: the identity may publish only under its own upstreams' names.
  await eventually(() => (violations.some((line) => line.includes(subjects.progress)) ? true : undefined), 3_000);
  expect(violations.some((line) => line.includes(subjects.log))).toBe(true);
  expect(violations.some((line) => line.includes(subjects.beat))).toBe(true);
});

// attack: a body that is no JSON on a call's own progress or log subject (where its upstream's
// connectors may publish). The gateway read it with `msg.json()` inside its NATS callback, which
// threw out of nats.js's read loop: that loop ended ("reader closed"), and the gateway's connection
// read nothing more, no answer to any call of any upstream, until nats.js found the connection
// stale and reconnected (pings every 10 s, two missed). One compromised connector for `rec`, one
// message, and every tenant's calls through that gateway failed.
test.each(["progress", "log"] as const)("attack: a %s message that is no JSON leaves the gateway serving every other call", async (kind) => {
  const names = await createVirtualServer(stack, `unparsed-${kind}`, [
    { upstream: "rec", tool: "slow" },
    { upstream: "other", tool: "echo" },
  ]);
  await using agent = await connectHttp(stack.mcpUrl(`unparsed-${kind}`));
  await agent.setLoggingLevel("debug");
  const subject = new Promise<string>((resolve) => {
    const sub = attacker.subscribe(Subjects.upstreamCall("rec"), {
      callback: (_err, msg) => {
        const named = msg.headers?.get(kind === "progress" ? BusHeader.progressSubject : BusHeader.logSubject);
        if (named) {
          sub.unsubscribe();
          resolve(named);
        }
      },
    });
  });
  await attacker.flush();
  // Longer than a connector's silence window: the real connector's beats keep it (requester.ts).
  const held = agent.callTool({ name: names["rec/slow"]!, arguments: { ms: 3_000, steps: 2 } }, undefined, { onprogress: () => undefined });
  attacker.publish(await subject, "not json");
  await attacker.flush();
  expect(await held.catch((e: Error) => e.message)).toMatchObject({ content: [{ type: "text" }] });
  // Another tenant's call of another upstream, through the same gateway, right after.
  const began = Date.now();
  const answer = await (async () => {
    await using bystander = await connectHttp(stack.mcpUrl(`unparsed-${kind}`));
    return await bystander.callTool({ name: names["other/echo"]!, arguments: { message: "still here" } }, undefined, { timeout: 8_000 });
  })().catch((e: Error) => e.message);
  console.log(JSON.stringify({ kind, ms: Date.now() - began, answer }));
  expect(answer).toMatchObject({ content: [{ type: "text", text: "echo: still here" }] });
}, 30_000);

// attack: a health report that is no JSON, on the subject of the connector's own upstream (where
// its identity may publish). The registry and every gateway follow the health stream and read each
// report with `message.json()`.
test("attack: a health report that is no JSON is skipped, and later reports are still heard", async () => {
  attacker.publish(Subjects.upstreamHealth("rec", "unreadable"), "not json");
  await attacker.flush();
  await new Promise((r) => setTimeout(r, 1_000));
  attacker.publish(Subjects.upstreamHealth("rec", "later"), JSON.stringify({ upstream: "rec", replica: "later", status: "down", reason: "heard after", circuit: "closed", at: new Date().toISOString() }));
  await attacker.flush();
  const replica = await eventually(async () => {
    const { body } = await stack.admin.get("/v1/upstreams/rec");
    return (body.health?.replicas as { replica: string }[] | undefined)?.find((r) => r.replica === "later");
  }, 5_000).catch(() => undefined);
  expect(replica).toBeDefined();
});
