// The architecture's floor: the same hops as Manifold (agent → HTTP front → NATS → back →
// upstream and back) with nothing else: no auth, sessions, validation, metrics or audit. It
// tells what any implementation of this topology must spend on this machine, so Manifold's own
// overhead can be read apart from the cost of the hops themselves.
// Usage: node floor.js front <port> <natsUrl> | node floor.js back <natsUrl> <upstreamUrl>
// (NATS_NKEY_SEED_FILE: the gateway's seed for the front, the connector's for the back.)
// With FLOOR_DUTIES=1 both hops also do the least each call must cost any gateway that does
// what the issues require of this one (see `duties` below): the "duties floor".
import { connectBus, flushNow, type Msg } from "@manifold/bus";
import { JsonLimits, Subjects, auditSubject, jsonTextTooDeep } from "@manifold/contracts";
import { createLogger, createMetricsRegistry, DURATION_BUCKETS, HotHistogram } from "@manifold/telemetry";
import { headers as natsHeaders } from "@nats-io/transport-node";
import { randomUUID } from "node:crypto";
import { createServer, type ServerResponse } from "node:http";
import { Pool } from "undici";

const [role, ...args] = process.argv.slice(2);
/**
 * The duties: the caller authenticated (a cached key lookup), the exposed name mapped to the
 * upstream's tool and the call re-encoded with it, the caller named to the back in a header, a
 * duration histogram at each hop, one audit record per call published to the audit stream
 * (batched per 20 ms, as the gateway does), and the upstream's answer checked for depth and
 * parsed before its result is passed on. Nothing else: no sessions, tracing, limits or errors.
 */
const duties = process.env.FLOOR_DUTIES === "1";
// A call subject, so the floor runs under the same bus permissions as gateway and connector;
// one per floor, or the two would answer each other's calls.
const SUBJECT = Subjects.upstreamCall(duties ? "floor-duties" : "floor");
// The same bus client as the services, so the floor moves with it.
const connect = (url: string) =>
  connectBus({
    url,
    name: `floor-${role}`,
    role: role === "front" ? "gateway" : "connector",
    seedFile: process.env.NATS_NKEY_SEED_FILE,
    logger: createLogger({ component: "floor", level: "silent" }),
  });

if (role === "front") {
  const [port, natsUrl] = args;
  const nc = await connect(natsUrl!);
  const server = createServer((req, res) => {
    if (req.method === "DELETE") return void res.writeHead(200).end();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const text = body.toString("utf8");
      if (duties && jsonTextTooDeep(text, JsonLimits.requestDepth)) return void res.writeHead(400).end();
      // Only the method decides the route, as a real front must at least do.
      const message = JSON.parse(text) as { id?: unknown; method: string; params?: { name?: string } };
      if (message.id === undefined) return void res.writeHead(202).end();
      if (duties && message.method === "tools/call") return void callWithDuties(message, req.headers.authorization, res);
      if (message.method === "initialize") {
        const result = { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "floor", version: "1" } };
        return void res.writeHead(200, { "content-type": "application/json", "mcp-session-id": randomUUID() }).end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
      }
      const replied = request(body);
      replied.then(
        (reply) => res.writeHead(200, { "content-type": "application/json" }).end(reply.data),
        (error: Error) => res.writeHead(502).end(error.message),
      );
    });
  });
  // As Manifold's requester does: the only request in flight is written at once (`flushNow`).
  let requests = 0;
  function request(body: Uint8Array | string, opts: { headers?: ReturnType<typeof natsHeaders> } = {}) {
    const replied = nc.request(SUBJECT, body, { timeout: 10_000, ...opts });
    if (++requests === 1) flushNow(nc);
    const done = () => void requests--;
    replied.then(done, done);
    return replied;
  }
  server.keepAliveTimeout = 60_000;
  server.listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));

  const callers = new Map<string | undefined, string>();
  const tools = new Map([["echo", "echo"]]);
  const metrics = createMetricsRegistry("floor");
  const duration = new HotHistogram({ name: "floor_call_seconds", help: "calls", labelNames: ["virtual_server", "tool", "outcome"], buckets: DURATION_BUCKETS, registers: [metrics] });
  let audit: Uint8Array[] = [];
  const flushAudit = () => {
    for (const record of audit) nc.publish(auditSubject("floor"), record);
    audit = [];
  };
  function callWithDuties(message: { id?: unknown; params?: { name?: string } }, authorization: string | undefined, res: ServerResponse) {
    const startedAt = performance.now();
    let caller = callers.get(authorization);
    if (!caller) callers.set(authorization, (caller = "bench"));
    const tool = tools.get(message.params?.name ?? "")!;
    const params = JSON.stringify({ ...message.params, name: tool });
    const hdrs = natsHeaders();
    hdrs.append("Manifold-Caller", caller);
    request(params, { headers: hdrs }).then(
      (reply) => {
        res.writeHead(200, { "content-type": "application/json" }).end(`{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":${reply.string()}}`);
        const ms = performance.now() - startedAt;
        duration.observe({ virtual_server: "floor", tool, outcome: "ok" }, ms / 1000);
        if (audit.length === 0) setTimeout(flushAudit, 20);
        audit.push(Buffer.from(JSON.stringify({ at: new Date().toISOString(), caller, virtualServer: "floor", tool, upstream: "fast", durationMs: ms, outcome: "ok" })));
      },
      (error: Error) => res.writeHead(502).end(error.message),
    );
  }
} else if (role === "back") {
  const [natsUrl, upstreamUrl] = args;
  const { origin, pathname } = new URL(upstreamUrl!);
  const pool = new Pool(origin, { connections: 64, keepAliveTimeout: 60_000 });
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const init = await pool.request({
    method: "POST",
    path: pathname,
    headers,
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "floor", version: "1" } } }),
  });
  await init.body.dump();
  headers["mcp-session-id"] = String(init.headers["mcp-session-id"]);
  headers["mcp-protocol-version"] = "2025-06-18";
  const nc = await connect(natsUrl!);
  const metrics = createMetricsRegistry("floor");
  const duration = new HotHistogram({ name: "floor_upstream_seconds", help: "calls", labelNames: ["upstream", "outcome"], buckets: DURATION_BUCKETS, registers: [metrics] });
  let id = 0;
  // As Manifold's connector does: the only call's answer is written at once (`flushNow`).
  let running = 0;
  const respond = (msg: Msg, data: string | Uint8Array) => {
    msg.respond(data);
    if (running-- === 1) flushNow(nc);
  };
  nc.subscribe(SUBJECT, {
    queue: "floor",
    // With duties, a call arrives as its params under a caller; anything else (server/discover) as it came.
    callback: (_err, msg) => {
      running++;
      if (duties && msg.headers?.get("Manifold-Caller")) {
        const startedAt = performance.now();
        const body = `{"jsonrpc":"2.0","id":${++id},"method":"tools/call","params":${msg.string()}}`;
        pool.request({ method: "POST", path: pathname, headers, body }).then(
          async (res) => {
            const text = await res.body.text();
            const answer = jsonTextTooDeep(text, JsonLimits.resultDepth) ? undefined : (JSON.parse(text) as { result?: unknown });
            respond(msg, JSON.stringify(answer?.result ?? {}));
            duration.observe({ upstream: "fast", outcome: "ok" }, (performance.now() - startedAt) / 1000);
          },
          () => respond(msg, "{}"),
        );
        return;
      }
      pool.request({ method: "POST", path: pathname, headers, body: msg.data }).then(
        async (res) => respond(msg, new Uint8Array(await res.body.arrayBuffer())),
        () => respond(msg, "{}"),
      );
    },
  });
  await nc.flush();
  process.stdout.write("ready\n");
} else {
  throw new Error("usage: floor.js front <port> <natsUrl> | back <natsUrl> <upstreamUrl>");
}

// Exit on SIGTERM rather than die of it, so a CPU profile (BENCH_PROFILE_DIR) is written.
process.on("SIGTERM", () => process.exit(0));
