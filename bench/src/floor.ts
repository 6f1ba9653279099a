// The architecture's floor: the same hops as Manifold (agent → HTTP front → NATS → back →
// upstream and back) with nothing else: no auth, sessions, validation, metrics or audit. It
// tells what any implementation of this topology must spend on this machine, so Manifold's own
// overhead can be read apart from the cost of the hops themselves.
// Usage: node floor.js front <port> <natsUrl> | node floor.js back <natsUrl> <upstreamUrl>
// (NATS_NKEY_SEED_FILE: the gateway's seed for the front, the connector's for the back.)
import { connectBus } from "@manifold/bus";
import { Subjects } from "@manifold/contracts";
import { createLogger } from "@manifold/telemetry";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { Pool } from "undici";

// A call subject, so the floor runs under the same bus permissions as gateway and connector.
const SUBJECT = Subjects.upstreamCall("floor");
const [role, ...args] = process.argv.slice(2);
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
      // Only the method decides the route, as a real front must at least do.
      const message = JSON.parse(body.toString("utf8")) as { id?: unknown; method: string };
      if (message.id === undefined) return void res.writeHead(202).end();
      if (message.method === "initialize") {
        const result = { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "floor", version: "1" } };
        return void res.writeHead(200, { "content-type": "application/json", "mcp-session-id": randomUUID() }).end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
      }
      nc.request(SUBJECT, body, { timeout: 10_000 }).then(
        (reply) => res.writeHead(200, { "content-type": "application/json" }).end(reply.data),
        (error: Error) => res.writeHead(502).end(error.message),
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\n"));
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
  nc.subscribe(SUBJECT, {
    queue: "floor",
    callback: (_err, msg) => {
      pool.request({ method: "POST", path: pathname, headers, body: msg.data }).then(
        async (res) => msg.respond(new Uint8Array(await res.body.arrayBuffer())),
        () => msg.respond("{}"),
      );
    },
  });
  await nc.flush();
  process.stdout.write("ready\n");
} else {
  throw new Error("usage: floor.js front <port> <natsUrl> | back <natsUrl> <upstreamUrl>");
}
