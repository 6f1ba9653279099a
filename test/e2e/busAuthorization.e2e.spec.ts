import { connectBus, type NatsConnection } from "@manifold/bus";
import { AuditStream, BusHeader, EventType, KvBucket, PROGRESS_PREFIX, RegistryStream, Subjects, type RegistryEvent } from "@manifold/contracts";
import { generateApiKey } from "@manifold/domain";
import type { NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { createUser } from "@nats-io/nkeys";
import { headers } from "@nats-io/transport-node";
import { randomUUID } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, eventually, type DisposableClient } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// The attack found on main: any client reaching nats-server could (a) read agents' pass-through
// credentials off the call subjects, (b) read the gateways' session records, (c) append its own
// `consumer.key-issued` event, which the gateway then accepted. Each move is made here without
// credentials and with another service's, against the real services on a real nats-server.
const PASSTHROUGH_SECRET = "Bearer pass-through-secret-7f3a";
const logger = createLogger({ component: "attacker", level: "silent" });
/** A key-issued event for demo-agent that no admin issued, and the key it would make valid. */
const forgedKeyEvent = (commandId: string) => {
  const forged = generateApiKey();
  const event = {
    type: EventType.consumerKeyIssued,
    version: 1,
    data: { name: "demo-agent", key: forged.stored },
    meta: { commandId, at: new Date().toISOString(), actor: "admin:admin" },
  } satisfies RegistryEvent;
  return { forged, event };
};
const OTHERS = { connector: ["gateway", "registry"], sessions: ["connector", "registry"], events: ["connector", "gateway"] } as const;

describe("the bus refuses what an identity's role does not allow", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let names: Record<string, string>;
  let agentKey: string;
  let agent: DisposableClient;
  let sessionId: string;
  const opened: NatsConnection[] = [];
  const as = async (role: "registry" | "connector" | "gateway" | "operator") => {
    const nc = await connectAs(nats, role, `attacker-with-${role}-credentials`);
    opened.push(nc);
    return nc;
  };
  const lastSequence = async () => {
    const jsm = await jetstreamManager(await as("operator"));
    return (await jsm.streams.info(RegistryStream.name)).state.last_seq;
  };
  const callEcho = (message: string) => agent.callTool({ name: names["rec/echo"]!, arguments: { message } });

  beforeAll(async () => {
    nats = await startNats();
    [stack, recording] = await Promise.all([startStack(nats, { GATEWAY_AUTH: "required" }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: recording.url } });
    names = await createVirtualServer(stack, "secure", [{ upstream: "rec", tool: "echo" }]);
    expect((await stack.admin.post("/v1/consumers", { name: "demo-agent" })).status).toBe(201);
    agentKey = (await stack.admin.post("/v1/consumers/demo-agent/keys", {})).body.key;
    expect((await stack.admin.post("/v1/virtual-servers/secure/grants", { grantId: "demo", subject: { consumer: "demo-agent" } })).status).toBe(201);
    const transport = new StreamableHTTPClientTransport(new URL(stack.mcpUrl("secure")), {
      requestInit: { headers: { authorization: `Bearer ${agentKey}`, "x-manifold-upstream-headers": JSON.stringify({ rec: { Authorization: PASSTHROUGH_SECRET } }) } },
    });
    agent = await connectClient(transport);
    sessionId = transport.sessionId!;
  });

  afterAll(async () => {
    await agent?.close();
    await Promise.all(opened.map((nc) => nc.close()));
    await stack?.close();
    await recording?.close();
    await nats?.stop();
  });

  test("a client without credentials, or with a key nats-server does not know, cannot even connect", async () => {
    await expect(connectBus({ url: nats.url, name: "anonymous", logger })).rejects.toThrow(/Authorization Violation/i);
    const dir = await mkdtemp(join(tmpdir(), "manifold-stranger-"));
    await writeFile(join(dir, "stranger.nk"), new TextDecoder().decode(createUser().getSeed()), { mode: 0o600 });
    await expect(connectBus({ url: nats.url, name: "stranger", logger, seedFile: join(dir, "stranger.nk") })).rejects.toThrow(/Authorization Violation/i);
  });

  test.each(OTHERS.connector)("(a) with the %s's credentials, pass-through credentials on the call subjects cannot be read", async (role) => {
    const nc = await as(role);
    const seen: string[] = [];
    const spies = ["manifold.rpc.upstream.*.call", Subjects.upstreamCall("rec"), "manifold.rpc.>", ">", "_INBOX.connector.>"].map((subject) =>
      nc.subscribe(subject, { callback: (err, msg) => void (err ? undefined : seen.push(msg.headers?.toString() ?? "")) }),
    );
    const refusals = await Promise.all(spies.map((sub) => sub.closed));
    for (const refusal of refusals) expect(String(refusal)).toMatch(/Permissions Violation for Subscription/);
    // The call goes through, with the agent's credential reaching the upstream, and nobody else saw it.
    expect((await callEcho("secret-bearing")).content).toEqual([{ type: "text", text: "echo: secret-bearing" }]);
    expect(recording.calls.at(-1)!.headers.authorization).toBe(PASSTHROUGH_SECRET);
    expect(seen).toEqual([]);
  });

  test.each(OTHERS.sessions)("(b) with the %s's credentials, the gateways' session records cannot be read", async (role) => {
    // The record exists, and the gateway's identity reads it: the refusals below are about who asks.
    const gatewayKv = await new Kvm(jetstream(await as("gateway"), { timeout: 2_000 })).open(KvBucket.sessions);
    expect((await gatewayKv.get(sessionId))?.json()).toMatchObject({ virtualServer: "secure" });

    const nc = await as(role);
    const js = jetstream(nc, { timeout: 1_000 });
    const kv = await new Kvm(js).open(KvBucket.sessions);
    await expect(kv.get(sessionId)).rejects.toThrow();
    await expect(js.consumers.get(`KV_${KvBucket.sessions}`)).rejects.toThrow();
    const watcher = nc.subscribe(`$KV.${KvBucket.sessions}.>`);
    expect(String(await watcher.closed)).toMatch(/Permissions Violation for Subscription/);
  });

  test.each(OTHERS.events)("(c) with the %s's credentials, a forged key-issued event is refused and the forged key stays unusable", async (role) => {
    const before = await lastSequence();
    const { forged, event } = forgedKeyEvent(`forged-${role}`);
    const nc = await as(role);
    await expect(jetstream(nc, { timeout: 1_000 }).publish(Subjects.consumerEvents("demo-agent"), JSON.stringify(event))).rejects.toThrow();
    nc.publish(Subjects.consumerEvents("demo-agent"), JSON.stringify(event));
    await nc.flush();

    expect(await lastSequence()).toBe(before);
    const res = await fetch(stack.mcpUrl("secure"), {
      method: "POST",
      headers: { authorization: `Bearer ${forged.key}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } }),
    });
    expect(res.status).toBe(401);
    // The real key still works: the bus was not disturbed.
    expect((await callEcho("still here")).content).toEqual([{ type: "text", text: "echo: still here" }]);
  });

  test("a gateway may not publish health reports nor read the registry's replies; a connector may not hear session closings", async () => {
    const gateway = await as("gateway");
    const connector = await as("connector");
    await expect(jetstream(gateway, { timeout: 1_000 }).publish(Subjects.upstreamHealth("rec", "fake"), "{}")).rejects.toThrow();
    const replies = gateway.subscribe("_INBOX.registry.>");
    expect(String(await replies.closed)).toMatch(/Permissions Violation for Subscription/);
    const sessions = connector.subscribe(Subjects.sessionClosed);
    expect(String(await sessions.closed)).toMatch(/Permissions Violation for Subscription/);
  });

  test("attack: a gateway cannot borrow the connector's rights through a call's progress subject; one under manifold.rpc.progress.<its upstream> still relays", async () => {
    const gateway = await as("gateway");
    const operator = await as("operator");
    const heard = { discovered: 0, health: 0, progress: 0 };
    operator.subscribe(Subjects.registryDiscovered("*"), { callback: () => void heard.discovered++ });
    operator.subscribe(Subjects.upstreamHealth("rec", "forged"), { callback: () => void heard.health++ });
    operator.subscribe(`${PROGRESS_PREFIX}.rec.probe`, { callback: () => void heard.progress++ });
    await operator.flush();
    // A call as the gateway sends one, naming where the upstream's progress goes.
    const call = (progressSubject: string) => {
      const h = headers();
      h.set(BusHeader.callId, randomUUID());
      h.set(BusHeader.tool, "slow");
      h.set(BusHeader.caller, "attacker");
      h.set(BusHeader.progressSubject, progressSubject);
      return gateway.request(Subjects.upstreamCall("rec"), JSON.stringify({ name: "slow", arguments: { ms: 60, steps: 3 } }), { headers: h, timeout: 5_000 });
    };
    await call(`${PROGRESS_PREFIX}.rec.probe`);
    await eventually(() => (heard.progress === 3 ? true : undefined), 2_000, 20);
    // Before: the upstream's three progress notifications went out as tool-list reports, with the
    // connector's rights (a gateway may not publish there; a hostile upstream chose their bytes).
    await call(Subjects.registryDiscovered("rec"));
    await call(Subjects.upstreamHealth("rec", "forged"));
    await operator.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(heard).toEqual({ discovered: 0, health: 0, progress: 3 });
  });

  // A session's changed state (log level, subscriptions), and an agent's answer relayed to the replica that asked.
  test.each([
    ["announce a session's changed state", Subjects.sessionChanged, (role: string) => ({ id: sessionId, revision: 1_000, state: { logLevel: "debug", subscriptions: [`rec+${role}://x`] }, holders: ["replica1"] })],
    ["relay an agent's answer for a session", Subjects.sessionAnswer, (role: string) => ({ session: sessionId, answer: { jsonrpc: "2.0", id: "replica1.0", result: { action: "accept", content: { by: role } } } })],
  ] as const)("only a gateway may %s, and only gateways hear it", async (_what, subject, message) => {
    for (const role of ["connector", "registry"] as const) {
      const spy = (await as(role)).subscribe(subject("*"));
      expect(String(await spy.closed), role).toMatch(/Permissions Violation for Subscription/);
    }
    const listener = await as("gateway");
    const heard: string[] = [];
    const sub = listener.subscribe(subject("replica1"), { callback: (_err, msg) => void heard.push(msg.string()) });
    await listener.flush();
    const publishers = { registry: await as("registry"), connector: await as("connector"), gateway: await as("gateway") };
    const notice = (role: string) => JSON.stringify(message(role));
    for (const [role, nc] of Object.entries(publishers)) {
      nc.publish(subject("replica1"), notice(role));
      await nc.flush();
    }
    await eventually(() => (heard.length > 0 ? true : undefined));
    await listener.flush();
    expect(heard).toEqual([notice("gateway")]);
    sub.unsubscribe();
  });

  test("attack: the registry's identity cannot widen the audit stream to capture the calls and their pass-through credentials", async () => {
    const jsm = await jetstreamManager(await as("registry"), { timeout: 1_000 });
    const { config } = await jsm.streams.info(AuditStream.name);
    await expect(jsm.streams.update(AuditStream.name, { ...config, subjects: [AuditStream.subjects, Subjects.upstreamCall("*")] })).rejects.toThrow();
    expect((await (await jetstreamManager(await as("operator"))).streams.info(AuditStream.name)).config.subjects).toEqual([AuditStream.subjects]);
  });

  // nats-server does not check a push consumer's deliver subject against its creator's publish
  // rights (nats-io/nats-server#8274, open): a gateway wrote a forged key-issued event into a vault
  // key, had a push consumer of the vault deliver it to a registry event subject, and, with anyone
  // listening there, the registry stream appended it (measured: 1 event). A consumer of a stream
  // delivering into that same stream is refused as a cycle.
  test.each(["gateway", "connector", "registry"] as const)(
    "attack: with the %s's credentials, a push consumer cannot deliver bytes it wrote, or a stream it reads, to a registry event subject",
    async (role) => {
      const before = await lastSequence();
      const { event } = forgedKeyEvent(`pushed-${role}`);
      const nc = await as(role);
      const [stream, filter] = role === "gateway" ? [`KV_${KvBucket.vault}`, `$KV.${KvBucket.vault}.pushed`] : [RegistryStream.name, Subjects.consumerEvents("demo-agent")];
      if (role === "gateway") {
        const js = jetstream(nc, { timeout: 1_000 });
        await new Kvm(js).create(KvBucket.vault);
        await js.publish(filter, JSON.stringify(event));
      }
      // Someone listening on the deliver subject, without whom a push consumer waits.
      const listener = await as("operator");
      listener.subscribe(Subjects.consumerEvents("eve"));
      await listener.flush();
      const jsm = await jetstreamManager(nc, { timeout: 1_000 });
      const created = await jsm.consumers
        .add(stream, { name: `pushed-${role}`, deliver_subject: Subjects.consumerEvents("eve"), filter_subject: filter, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All })
        .then(() => "created", (e: Error) => e.message);
      await new Promise((r) => setTimeout(r, 500));
      expect({ created, appended: (await lastSequence()) - before }).toEqual({ created: expect.stringMatching(/permissions|cycle/i), appended: 0 });
    },
  );

  // attack (helper-94): a discovery report whose reply subject named a registry event subject had
  // the registry's answer stored in its event log, with the registry's rights: that consumer's
  // later commands all failed their expected sequence (503), for good, even after a restart.
  test("attack: a request's reply aimed at the event log is not answered", async () => {
    await stack.admin.post("/v1/consumers", { name: "frozen" });
    const connector = await as("connector");
    const before = await lastSequence();
    for (const body of ["{}", JSON.stringify({ upstream: "rec", serverInfo: { name: "rec", version: "1" }, tools: [] })]) {
      connector.publish(Subjects.registryDiscovered("rec"), body, { reply: Subjects.consumerEvents("frozen") });
    }
    await connector.flush();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await lastSequence()).toBe(before);
    const issued = await stack.admin.post("/v1/consumers/frozen/keys", {});
    expect(issued.status).toBe(201);
  });

  // attack: a reply subject is the requester's word, and answering it lends the requester the
  // answerer's right to publish there. A connector sees the gateway's reply subjects in the calls it
  // gets (`_INBOX.gateway.<id>.<n>`, `n` counting up), and the registry answered a discovery report
  // into any inbox: a connector of one upstream could have it answer a call pending for another.
  test("attack: the registry answers a discovery report only into a connector's inbox", async () => {
    const operator = await as("operator");
    const heard: string[] = [];
    operator.subscribe("_INBOX.gateway.PENDING.>", { callback: (_e, m) => void heard.push(m.subject) });
    await operator.flush();
    const connector = await as("connector");
    const report = JSON.stringify({ upstream: "rec", serverInfo: { name: "rec", version: "1" }, tools: [] });
    connector.publish(Subjects.registryDiscovered("rec"), report, { reply: "_INBOX.gateway.PENDING.7" });
    await connector.flush();
    // Into its own inbox, the same report is answered.
    expect((await connector.request(Subjects.registryDiscovered("rec"), report, { timeout: 5_000 })).json()).toMatchObject({ changed: expect.any(Boolean) });
    await operator.flush();
    expect(heard).toEqual([]);
  });

  // attack: the same deputy one hop on. A gateway sees connectors' reply subjects (it answers their
  // beats, `_INBOX.connector.<id>.<n>`), and a connector answered a call into any inbox: a gateway's
  // identity could have it settle a connector's pending discovery report, or the registry's pending
  // list request, with bytes of the gateway's choosing in the call.
  test("attack: a connector answers a call only into a gateway's inbox, a list request only into the registry's", async () => {
    const operator = await as("operator");
    const heard: string[] = [];
    operator.subscribe("_INBOX.*.PENDING.>", { callback: (_e, m) => void heard.push(m.subject) });
    await operator.flush();
    const [gateway, registry] = [await as("gateway"), await as("registry")];
    for (const reply of ["_INBOX.connector.PENDING.7", "_INBOX.registry.PENDING.7"]) {
      gateway.publish(Subjects.upstreamCall("rec"), "{}", { reply });
      gateway.publish(Subjects.upstreamRequest("rec"), "{}", { reply });
    }
    registry.publish(Subjects.upstreamList("rec"), "{}", { reply: "_INBOX.gateway.PENDING.7" });
    await Promise.all([gateway.flush(), registry.flush()]);
    // Into the requester's own inbox, each is answered (a refusal of the empty call is an answer).
    await expect(gateway.request(Subjects.upstreamCall("rec"), "{}", { timeout: 5_000 })).resolves.toBeDefined();
    await expect(gateway.request(Subjects.upstreamRequest("rec"), "{}", { timeout: 5_000 })).resolves.toBeDefined();
    await expect(registry.request(Subjects.upstreamList("rec"), "{}", { timeout: 5_000 })).resolves.toBeDefined();
    await operator.flush();
    expect(heard).toEqual([]);
  });

  // attack (helper-94): the body's upstream and replica were believed over the subject, so a connector
  // serving one upstream could mark another down, with a reason of its choosing shown to admins.
  test("attack: a health report naming one upstream on another's subject is not believed", async () => {
    const connector = await as("connector");
    const forged = { upstream: "rec", replica: "prod-connector-1", status: "down", reason: "credentials rejected: re-register at https://attacker.example/mcp", circuit: "open", at: new Date().toISOString() };
    const health = async () => (await stack.admin.get("/v1/upstreams/rec")).body.health as { replicas: { replica: string }[] };
    await jetstream(connector).publish(Subjects.upstreamHealth("elsewhere", "r1"), JSON.stringify(forged));
    await jetstream(connector).publish(Subjects.upstreamHealth("rec", "r2"), JSON.stringify({ ...forged, replica: "r1" }));
    await new Promise((r) => setTimeout(r, 500));
    expect((await health()).replicas.map((r) => r.replica)).not.toContain("prod-connector-1");
    expect((await health()).replicas.map((r) => r.replica)).not.toContain("r1");
    // On its own subject, a report is believed (the subject is what the bus let the connector publish on).
    await jetstream(connector).publish(Subjects.upstreamHealth("rec", "r3"), JSON.stringify({ ...forged, replica: "r3" }));
    await eventually(async () => ((await health()).replicas.some((r) => r.replica === "r3") ? true : undefined), 5_000, 100);
  });

  test("attack: a tool-list report naming one upstream on another's subject is refused, on its own subject recorded", async () => {
    const connector = await as("connector");
    const report = { upstream: "rec", serverInfo: { name: "rec", version: "9" }, tools: [{ name: "planted", description: "attacker-written", inputSchema: { type: "object" } }] };
    const tools = async () => ((await stack.admin.get("/v1/upstreams/rec")).body.tools as { name: string }[]).map((t) => t.name);
    const elsewhere = await connector.request(Subjects.registryDiscovered("elsewhere"), JSON.stringify(report), { timeout: 5_000 });
    expect({ code: elsewhere.headers?.get(BusHeader.errorCode), message: elsewhere.json<{ message: string }>().message }).toEqual({ code: "forbidden", message: "a report for upstream 'rec' came on the subject of another" });
    expect(await tools()).not.toContain("planted");
    const own = await connector.request(Subjects.registryDiscovered("rec"), JSON.stringify(report), { timeout: 5_000 });
    expect(own.json()).toEqual({ changed: true });
    expect(await tools()).toContain("planted");
  });

  /** What a connector hears on `subject` when each role publishes `body(role)` there: the gateway's alone. */
  const heardFromEachRole = async (subject: string, body: (role: string) => string) => {
    const listener = await as("connector");
    const heard: string[] = [];
    const sub = listener.subscribe(subject, { callback: (_err, msg) => void heard.push(msg.string()) });
    await listener.flush();
    const publishers = { registry: await as("registry"), connector: await as("connector"), gateway: await as("gateway") };
    for (const [role, nc] of Object.entries(publishers)) {
      nc.publish(subject, body(role));
      await nc.flush();
    }
    await eventually(() => (heard.length > 0 ? true : undefined));
    await listener.flush();
    sub.unsubscribe();
    return heard;
  };

  test("only a gateway may tell connectors to close the sessions of a dropped credential", async () => {
    const body = (role: string) => JSON.stringify({ fingerprint: role.padEnd(43, "x") });
    expect(await heardFromEachRole(Subjects.credentialDropped("rec"), body)).toEqual([body("gateway")]);
  });

  test("only a gateway may tell connectors that a listen stream's subscriptions are released", async () => {
    const body = (role: string) => JSON.stringify({ caller: role, holder: role, uris: ["doc://a"] });
    expect(await heardFromEachRole(Subjects.subscriptionReleased("rec"), body)).toEqual([body("gateway")]);
  });
});
