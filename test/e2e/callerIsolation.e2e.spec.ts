import { busRequest, type NatsConnection } from "@manifold/bus";
import { BusHeader, Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectClient, connectHttp, eventually } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

const HEADER = "X-Manifold-Upstream-Headers";
/** What one hostile caller sends; no other caller's error text, no log line may ever hold it. */
const MARK = "ISOLATION-MARK-5e1f";

/** JSON an HTTP header can carry: everything beyond ASCII escaped. */
const asciiJson = (value: unknown) => JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** An upstream that refuses one credential with 401 and serves everyone else (a proxy in front of a recording upstream). */
async function refusingProxy(target: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.headers.authorization === `Bearer ${MARK}`) {
      res.writeHead(401, { "content-type": "application/json" }).end('{"error":"invalid_token"}');
      return;
    }
    const upstream = request(target, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode!, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, server };
}

describe("one caller cannot cut everyone else off an upstream", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let proxy: { url: string; server: Server };
  let bus: NatsConnection;
  let names: Record<string, string>;
  const logs: string[] = [];

  beforeAll(async () => {
    nats = await startNats();
    recording = await startRecordingUpstream("shared");
    proxy = await refusingProxy(recording.url);
    stack = await startStack(nats.url, { CONNECTOR_BREAKER_THRESHOLD: "3", CONNECTOR_BREAKER_COOLDOWN_MS: "5000", HEALTH_HEARTBEAT_MS: "200" }, { logs });
    // The attack as a gateway would carry it: straight onto the call subject.
    bus = await connectAs(nats, "gateway", "attacker");
    await registerUpstreams(stack, {
      name: "shared",
      transport: { type: "streamable-http", url: proxy.url },
      options: { callTimeoutMs: 2_500, maxConcurrency: 4 },
    });
    names = await createVirtualServer(stack, "iso", [
      { upstream: "shared", tool: "echo" },
      { upstream: "shared", tool: "slow" },
    ]);
  });

  afterAll(async () => {
    await bus?.close();
    await stack?.close();
    await new Promise((resolve) => proxy?.server.close(resolve));
    await recording?.close();
    await nats?.stop();
  });

  const health = async () => (await stack.admin.get("/v1/upstreams/shared")).body.health;
  const echo = (client: Awaited<ReturnType<typeof connectHttp>>, message: string) => client.callTool({ name: names["shared/echo"]!, arguments: { message } });

  test("pass-through values a header cannot carry are refused naming the header, at the gateway and at the connector, and count nowhere", async () => {
    for (const bad of [`Bearer x\u0000${MARK}`, `Bearer ${MARK}\r\nX-Injected: 1`, `Bearer ${MARK}秘密`]) {
      const res = await fetch(stack.mcpUrl("iso"), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", [HEADER]: asciiJson({ shared: { Authorization: bad } }) },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } } }),
      });
      const text = await res.text();
      expect(res.status).toBe(400);
      expect(text).toContain("Authorization");
      expect(text).not.toContain(MARK);
    }
    // Straight onto the bus, past the gateway: the connector refuses the same way, more times than the breaker's threshold.
    for (let i = 0; i < 6; i++) {
      const error = await busRequest(bus, Subjects.upstreamCall("shared"), new TextEncoder().encode(JSON.stringify({ name: "echo", arguments: { message: "x" } })), {
        timeoutMs: 2_000,
        busTimeoutMs: 2_500,
        target: "upstream 'shared'",
        headers: { [BusHeader.callId]: `attack-${i}`, [BusHeader.tool]: "echo", [BusHeader.upstreamHeaders]: JSON.stringify({ Authorization: `Bearer x\u0000${MARK}${i}` }) },
      }).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      expect(error?.code).toBe("invalid_upstream_headers");
      expect(error?.message).not.toContain(MARK);
    }
    await using other = await connectHttp(stack.mcpUrl("iso"));
    expect((await echo(other, "after the attack")).content).toEqual([{ type: "text", text: "echo: after the attack" }]);
    expect(await health()).toMatchObject({ status: "up", replicas: [{ circuit: "closed" }] });
    expect(logs.filter((l) => l.includes(MARK))).toEqual([]);
  });

  test("credentials the upstream refuses (401) fail that caller's own session only", async () => {
    await using refused = await connectClient(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl("iso")), { requestInit: { headers: { [HEADER]: JSON.stringify({ shared: { Authorization: `Bearer ${MARK}` } }) } } }),
    );
    const errors: string[] = [];
    for (let i = 0; i < 6; i++) {
      const error = await echo(refused, "mine").then(() => undefined, (e: Error) => e);
      expect(error).toBeDefined();
      errors.push(JSON.stringify({ message: error!.message, data: (error as { data?: unknown }).data }));
    }
    // Its own circuit opened: its message speaks of its own session.
    expect(errors.at(-1)).toContain("this caller's session");
    await using other = await connectHttp(stack.mcpUrl("iso"));
    for (let i = 0; i < 5; i++) expect((await echo(other, `ok ${i}`)).content).toEqual([{ type: "text", text: `echo: ok ${i}` }]);
    const board = await health();
    expect(board).toMatchObject({ status: "up", replicas: [{ circuit: "closed" }] });
    expect(JSON.stringify(board)).not.toContain(MARK);
    expect(logs.filter((l) => l.includes(MARK))).toEqual([]);
  });

  test("a hanging tool cannot starve the upstream's other tools: a healthy tool keeps at least 95 % success", async () => {
    const attackers = await Promise.all(Array.from({ length: 6 }, () => connectHttp(stack.mcpUrl("iso"))));
    await using healthy = await connectHttp(stack.mcpUrl("iso"));
    let stop = false;
    const hang = attackers.map(async (client) => {
      while (!stop) {
        await client.callTool({ name: names["shared/slow"]!, arguments: { ms: 20_000 } }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
    try {
      // Let the hanging calls fill their share and time out a few times first.
      await new Promise((r) => setTimeout(r, 1_000));
      let ok = 0;
      let failed = 0;
      const errors: string[] = [];
      const until = Date.now() + 5_000;
      while (Date.now() < until) {
        await echo(healthy, "steady").then(
          () => ok++,
          (e: Error) => {
            failed++;
            errors.push(e.message);
          },
        );
      }
      expect(ok / (ok + failed), errors.join("\n")).toBeGreaterThanOrEqual(0.95);
      expect(ok).toBeGreaterThan(10);
      // The hanging tool's own circuit opened; the upstream stays up for the rest.
      const board = await eventually(async () => {
        const h = await health();
        return h.replicas[0]?.reason?.includes("tool") ? h : undefined;
      }, 20_000, 100);
      expect(board.replicas[0]).toMatchObject({ status: "degraded", circuit: "closed" });
      expect(board.replicas[0].reason).toContain("'slow'");
    } finally {
      stop = true;
      await Promise.all(hang);
      await Promise.all(attackers.map((a) => a.close()));
    }
  });
});

describe("one caller's backlog cannot keep another caller from an upstream", () => {
  let nats: NatsServer;
  let stack: Stack;
  let recording: RecordingUpstream;
  let relayed: RecordingUpstream;
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    recording = await startRecordingUpstream("busy");
    relayed = await startRecordingUpstream("relay");
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", CONNECTOR_USER_SESSIONS_MAX: "8" });
    // Two slots for the tool (its share of four): a queue forms as soon as one caller sends more.
    await registerUpstreams(
      stack,
      { name: "busy", transport: { type: "streamable-http", url: recording.url }, options: { callTimeoutMs: 3_000, maxConcurrency: 4 } },
      { name: "relay", transport: { type: "streamable-http", url: relayed.url }, options: { passthroughHeaders: ["Authorization"] } },
    );
    names = await createVirtualServer(stack, "shared-bus", [
      { upstream: "busy", tool: "slow" },
      { upstream: "relay", tool: "echo" },
    ]);
    keys = await grantedConsumers(stack, "shared-bus", ["noisy", "quiet"]);
  });

  afterAll(async () => {
    await stack?.close();
    await recording?.close();
    await relayed?.close();
    await nats?.stop();
  });

  const clientOf = (key: string, headers: Record<string, string> = {}) =>
    connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared-bus")), { requestInit: { headers: { authorization: `Bearer ${key}`, ...headers } } }));

  test("attack: one caller rotating pass-through credentials evicts only its own upstream sessions, and ends them at the upstream", async () => {
    const passing = (token: string) => ({ [HEADER]: JSON.stringify({ relay: { Authorization: `Bearer ${token}` } }) });
    await using quiet = await clientOf(keys.quiet!, passing("quiet-token"));
    const sessionsOf = (token: string) => new Set(relayed.calls.filter((c) => c.headers.authorization === `Bearer ${token}`).map((c) => c.headers["mcp-session-id"]));
    await quiet.callTool({ name: names["relay/echo"]!, arguments: { message: "before" } });
    // The noisy caller sends a new credential on every call: 40 values against a pool of 8 sessions.
    for (let i = 0; i < 40; i++) {
      await using noisy = await clientOf(keys.noisy!, passing(`noisy-${i}`));
      await noisy.callTool({ name: names["relay/echo"]!, arguments: { message: String(i) } });
    }
    await quiet.callTool({ name: names["relay/echo"]!, arguments: { message: "after" } });
    // The quiet caller's session survived the churn: one upstream session for both calls (it used to be evicted).
    expect(sessionsOf("quiet-token").size).toBe(1);
    // Evicted sessions were ended at the upstream: it holds the pool's 8 and the connector's shared
    // session at most (2,000 values had left 2,003 open).
    await eventually(() => (relayed.liveSessions <= 9 ? true : undefined), 5_000, 50).catch((e: Error) => {
      throw new Error(`${e.message}: ${relayed.liveSessions} sessions live`);
    });
  });

  test("a caller that queues ten slow calls at once leaves the next free slot to another caller, whose calls are served within one slow call", async () => {
    const noisy = await Promise.all(Array.from({ length: 10 }, () => clientOf(keys.noisy!)));
    await using quiet = await clientOf(keys.quiet!);
    let stop = false;
    const flood = noisy.map(async (client) => {
      while (!stop) await client.callTool({ name: names["busy/slow"]!, arguments: { ms: 1_000 } }).catch(() => undefined);
    });
    try {
      // The noisy caller's backlog forms: two calls running, eight waiting (four seconds of work).
      await new Promise((r) => setTimeout(r, 500));
      const took: number[] = [];
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        const result = await quiet.callTool({ name: names["busy/slow"]!, arguments: { ms: 50 } });
        took.push(Date.now() - started);
        expect(result.isError, JSON.stringify(result)).toBeFalsy();
      }
      // FIFO would put each quiet call behind the whole backlog (about 4 s, past the 3 s budget).
      expect(Math.max(...took), took.join(", ")).toBeLessThan(1_600);
    } finally {
      stop = true;
      await Promise.all(flood);
      await Promise.all(noisy.map((client) => client.close()));
    }
  });
});

describe("a full pass-through pool among callers holding as many sessions each", () => {
  let nats: NatsServer;
  let stack: Stack;
  let relayed: RecordingUpstream;
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    relayed = await startRecordingUpstream("relay");
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", CONNECTOR_USER_SESSIONS_MAX: "2" });
    await registerUpstreams(stack, { name: "relay", transport: { type: "streamable-http", url: relayed.url }, options: { passthroughHeaders: ["Authorization"], callTimeoutMs: 10_000 } });
    names = await createVirtualServer(stack, "pool", [
      { upstream: "relay", tool: "echo" },
      { upstream: "relay", tool: "slow" },
    ]);
    keys = await grantedConsumers(stack, "pool", ["busy", "idle", "newcomer"]);
  });
  afterAll(async () => {
    await stack?.close();
    await relayed?.close();
    await nats?.stop();
  });

  const relayClient = (key: string, token: string) =>
    connectClient(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl("pool")), {
        requestInit: { headers: { authorization: `Bearer ${key}`, [HEADER]: JSON.stringify({ relay: { Authorization: `Bearer ${token}` } }) } },
      }),
    );
  const sessionsOf = (token: string) => new Set(relayed.calls.filter((c) => c.headers.authorization === `Bearer ${token}`).map((c) => c.headers["mcp-session-id"]));

  test("ends the least recently used session, not the session of a call in flight", async () => {
    await using busy = await relayClient(keys.busy!, "busy-token");
    await using idle = await relayClient(keys.idle!, "idle-token");
    await busy.callTool({ name: names["relay/echo"]!, arguments: { message: "1" } });
    await idle.callTool({ name: names["relay/echo"]!, arguments: { message: "1" } });
    // busy now starts a long call: its session is the most recently used one.
    const running = busy.callTool({ name: names["relay/slow"]!, arguments: { ms: 2_000 } }).then(
      (r) => ({ ok: !r.isError, text: JSON.stringify(r.content) }),
      (e: Error) => ({ ok: false, text: e.message }),
    );
    await new Promise((r) => setTimeout(r, 300));
    await using newcomer = await relayClient(keys.newcomer!, "new-token");
    await newcomer.callTool({ name: names["relay/echo"]!, arguments: { message: "1" } });
    const outcome = await running;
    await idle.callTool({ name: names["relay/echo"]!, arguments: { message: "2" } });
    // Among equals the least recently used goes (the idle caller's: it opens a new one), and the busy call completes.
    expect(outcome.ok).toBe(true);
    expect(sessionsOf("idle-token").size).toBe(2);
  });
});
