import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { jetstreamManager } from "@nats-io/jetstream";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { spawnGateways } from "../helpers/replicas.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
/** The heap of this process, which runs the stack's gateway, after collecting garbage. */
const heapMiB = () => (gc(), gc(), process.memoryUsage().heapUsed / 2 ** 20);

const INIT = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } } };

// A caller cannot make a gateway replica hold sessions without bound: a limit per caller, and one per replica.
describe("session limits of a gateway replica", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  const keys: Record<string, string> = {};
  const logs: string[] = [];

  const initialize = (consumer: string) =>
    fetch(stack.mcpUrl("limited"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${keys[consumer]}` },
      body: JSON.stringify(INIT),
    });
  const end = (consumer: string, session: string) =>
    fetch(stack.mcpUrl("limited"), { method: "DELETE", headers: { authorization: `Bearer ${keys[consumer]}`, "mcp-session-id": session } });
  const errorOf = async (res: Response) => ((await res.json()) as { error: { code: number; message: string; data: { code: string } } }).error;

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_SESSIONS: "3", GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: "2" }, { logs }),
      startRecordingUpstream(),
    ]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    await createVirtualServer(stack, "limited", [{ upstream: "rec", tool: "echo" }]);
    for (const name of ["ann", "ben", "cat"]) {
      await stack.admin.post("/v1/consumers", { name });
      keys[name] = (await stack.admin.post(`/v1/consumers/${name}/keys`, {})).body.key;
      await stack.admin.post("/v1/virtual-servers/limited/grants", { grantId: name, subject: { consumer: name } });
    }
  });

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("past its own limit a caller gets 429 too_many_sessions; ending a session makes room; a full replica is shared, then 503 at_capacity", async () => {
    const first = await initialize("ann");
    const second = await initialize("ann");
    expect([first.status, second.status]).toEqual([200, 200]);
    const refused = await initialize("ann");
    expect(refused.status).toBe(429);
    const error = await errorOf(refused);
    expect(error).toMatchObject({ code: -32030, data: { code: "too_many_sessions" } });
    expect(error.message).toContain("consumer 'ann' already holds 2 sessions on this gateway replica (at most 2)");

    expect((await end("ann", first.headers.get("mcp-session-id")!)).status).toBe(200);
    const third = await initialize("ann");
    expect(third.status).toBe(200);

    expect((await initialize("ben")).status).toBe(200);
    // Full (3): ann holds 2, cat none. attack (helper-95): ten consumers at their own limit held every
    // place of a replica, and every other tenant's initialize was 503. Now the largest holder's idlest
    // session (ann's first left) gives way.
    expect((await initialize("cat")).status).toBe(200);
    const gone = await fetch(stack.mcpUrl("limited"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${keys.ann}`, "mcp-session-id": second.headers.get("mcp-session-id")!, "mcp-protocol-version": "2025-06-18" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(gone.status).toBe(404);
    // A session id is the handle its caller's requests present (with their credential): the log names
    // the session ended by its first 8 characters, as every other session log line does (helper-156).
    const session = second.headers.get("mcp-session-id")!;
    const line = logs.find((l) => l.includes("to make room for another caller"));
    expect(line).toContain(`"session":"${session.slice(0, 8)}"`);
    expect(logs.filter((l) => l.includes(session))).toEqual([]);
    // Now every caller holds one: full is full, for everyone.
    const full = await initialize("cat");
    expect(full.status).toBe(503);
    expect((await errorOf(full)).data.code).toBe("at_capacity");
  });

  // Each unknown Mcp-Session-Id is a look-up in the session directory, on the bus: before, it was
  // answered 404 without touching its caller's budget, so one credential drove unbounded look-ups.
  test("attack: requests naming session ids that do not exist spend their caller's budget: past it 429, not one more look-up each", async () => {
    const statuses: number[] = [];
    const started = performance.now();
    for (let batch = 0; batch < 8; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, () =>
          fetch(stack.mcpUrl("limited"), {
            method: "POST",
            headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${keys.ben}`, "mcp-session-id": crypto.randomUUID() },
            body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
          }),
        ),
      );
      statuses.push(...answers.map((a) => a.status));
    }
    const seconds = (performance.now() - started) / 1000;
    const [missing, refused] = [404, 429].map((status) => statuses.filter((s) => s === status).length);
    expect(missing! + refused!).toBe(400);
    // 1,000 units a second, 10 a look-up: a hundred at once, and a hundred more each second the 400 took.
    expect(missing, `${missing} looked up in ${seconds.toFixed(2)} s`).toBeLessThanOrEqual(100 + Math.ceil(100 * seconds) + 5);
  });

  // attack (helper-109): an initialize the session limits refuse was answered without touching its
  // caller's budget (it was charged only once admitted, after a scan of every session of the replica),
  // so one credential at its limit drove unbounded scans. Before: 400 of 400 answered 503, none 429.
  test("attack: initialize requests the session limits refuse spend their caller's budget: past it 429, not one more scan each", async () => {
    const statuses: number[] = [];
    const started = performance.now();
    // The replica is full (the test above): every initialize of cat's is refused by the limits.
    for (let batch = 0; batch < 8; batch++) statuses.push(...(await Promise.all(Array.from({ length: 50 }, () => initialize("cat")))).map((a) => a.status));
    const seconds = (performance.now() - started) / 1000;
    const [full, refused] = [503, 429].map((status) => statuses.filter((s) => s === status).length);
    const figures = `${full} answered at_capacity, ${refused} rate_limited in ${seconds.toFixed(2)} s`;
    console.log(figures);
    expect(full! + refused!, figures).toBe(400);
    // 1,000 units a second, 10 an initialize: a hundred at once, and a hundred more each second the 400 took.
    expect(full, figures).toBeLessThanOrEqual(100 + Math.ceil(100 * seconds) + 5);
  });
});

// A 2025 session recorded by one replica is taken over by another at its first request there.
describe("a session taken over from another replica counts against that replica's limits", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let gateways: Awaited<ReturnType<typeof spawnGateways>>;
  let key: string;
  const env = { GATEWAY_AUTH: "required", GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: "2" };
  const post = (port: number, body: unknown, session?: string) =>
    fetch(`http://127.0.0.1:${port}/mcp/limited`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, ...(session ? { "mcp-session-id": session } : {}) },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, env), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    await createVirtualServer(stack, "limited", [{ upstream: "rec", tool: "echo" }]);
    key = (await grantedConsumers(stack, "limited", ["ann"])).ann!;
    gateways = await spawnGateways(nats, env);
  }, 60_000);

  afterAll(async () => {
    await gateways?.stop();
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  // Before: the replica took the third over (200) and held 3 of the caller's sessions, past its 2.
  test("attack: a caller at its limit on one replica cannot pile its sessions from another onto it", async () => {
    const [a, b] = gateways.ports as [number, number];
    const opened: string[] = [];
    for (const port of [a, a, b, b]) {
      const res = await post(port, INIT);
      expect(res.status).toBe(200);
      opened.push(res.headers.get("mcp-session-id")!);
    }
    expect((await post(b, { jsonrpc: "2.0", id: 2, method: "tools/list" }, opened[2])).status).toBe(200);
    const taken = await post(b, { jsonrpc: "2.0", id: 2, method: "tools/list" }, opened[0]);
    expect({ status: taken.status, code: ((await taken.json()) as { error?: { data?: { code?: string } } }).error?.data?.code }).toEqual({ status: 429, code: "too_many_sessions" });
    // On its own replica it goes on.
    expect((await post(a, { jsonrpc: "2.0", id: 3, method: "tools/list" }, opened[0])).status).toBe(200);
  });
});

// A session keeps its client's initialize request for its whole life, in the gateway's memory and in
// the session directory: bounded by count alone, 200 initialize requests padded to 900 KB kept 175 MiB
// of one gateway's heap and 172 MiB of JetStream storage for one consumer.
describe("what a session keeps is bounded by size too", () => {
  let nats: NatsServer;
  let stack: Stack;
  let upstream: RecordingUpstream;
  let key: string;

  const initialize = (padding: number) =>
    fetch(stack.mcpUrl("sized"), {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` },
      body: JSON.stringify({ ...INIT, params: { ...INIT.params, capabilities: { experimental: { pad: { blob: "x".repeat(padding) } } } } }),
    });

  beforeAll(async () => {
    nats = await startNats();
    // A 900 KB body costs ~215 units of its caller's budget (gatewayWideBodies.e2e): one wide enough for 20 in a row.
    [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "10000" }), startRecordingUpstream()]);
    await registerUpstreams(stack, { name: "rec", transport: { type: "streamable-http", url: upstream.url } });
    await createVirtualServer(stack, "sized", [{ upstream: "rec", tool: "echo" }]);
    key = (await grantedConsumers(stack, "sized", ["dan"])).dan!;
  });

  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
  });

  test("an initialize request over 16 KiB is refused with 400 invalid_request naming the limit, and nothing of it is kept", async () => {
    const nc = await connectAs(nats, "operator", "probe");
    const jsm = await jetstreamManager(nc);
    const kvBytes = async () => (await jsm.streams.info("KV_manifold-sessions")).state.bytes;
    try {
      const before = await kvBytes();
      for (let i = 0; i < 20; i++) {
        const refused = await initialize(900_000);
        expect(refused.status).toBe(400);
        const { error } = (await refused.json()) as { error: { data: { code: string; maxBytes: number }; message: string } };
        expect(error.data).toMatchObject({ code: "invalid_request", maxBytes: 16_384 });
        expect(error.message).toContain("at most 16384 bytes");
        expect(refused.headers.get("mcp-session-id")).toBeNull();
      }
      expect((await kvBytes()) - before).toBe(0);
      // A client that declares a lot still fits.
      const accepted = await initialize(12_000);
      expect(accepted.status).toBe(200);
      expect(accepted.headers.get("mcp-session-id")).toBeTruthy();
    } finally {
      await nc.close();
    }
  });

  /** Opens a 2026-07-28 listen stream whose request is padded (in clientInfo) by `padding` bytes, and never reads it. */
  const listen = (padding: number, resourceSubscriptions?: string[]) =>
    new Promise<{ req: ClientRequest; res: IncomingMessage }>((resolve, reject) => {
      const meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { name: "agent", version: "1", description: "p".repeat(padding) },
        "io.modelcontextprotocol/clientCapabilities": {},
      };
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { notifications: { toolsListChanged: true, ...(resourceSubscriptions ? { resourceSubscriptions } : {}) }, _meta: meta } });
      const req = httpRequest(stack.mcpUrl("sized"), {
        method: "POST",
        agent: false,
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}`, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen" },
      });
      req.on("response", (res) => resolve({ req, res }));
      req.on("error", reject);
      req.end(body);
    });
  const bodyOf = (res: IncomingMessage) => new Promise<string>((resolve) => { let text = ""; res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => resolve(text)); });

  test("attack: a subscriptions/listen request of over 16 KiB besides its resource URIs is refused with 400 invalid_request naming the limit: 100 of them keep nothing", async () => {
    const before = heapMiB();
    for (let i = 0; i < 100; i++) {
      const { res } = await listen(900 * 1024);
      // Before: each was a stream holding its 900 KB request (100 of them: +179 MiB of the gateway's heap).
      expect(res.statusCode).toBe(400);
      const { error } = JSON.parse(await bodyOf(res)) as { error: { data: { code: string; maxBytes: number } } };
      expect(error.data).toMatchObject({ code: "invalid_request", maxBytes: 16_384 });
    }
    expect(heapMiB() - before).toBeLessThan(16);
    // Resource URIs are bounded apart: at most 100 of them, each at most 4,096 characters.
    for (const [uris, data] of [
      [Array.from({ length: 101 }, (_, i) => `r://${i}`), { maxItems: 100 }],
      [[`r://${"u".repeat(5_000)}`], { maxLength: 4_096 }],
    ] as const) {
      const { res: refused } = await listen(0, [...uris]);
      expect(refused.statusCode).toBe(400);
      expect((JSON.parse(await bodyOf(refused)) as { error: { data: unknown } }).error.data).toMatchObject({ code: "invalid_request", ...data });
    }
    // A client that declares a lot still listens.
    const { req, res } = await listen(12_000);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("text/event-stream");
    res.destroy();
    req.destroy();
  });
});
