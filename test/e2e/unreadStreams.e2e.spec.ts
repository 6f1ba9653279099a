import { Subjects } from "@manifold/contracts";
import type { NatsServer } from "@manifold/nats-server";
import type { NatsConnection } from "@nats-io/transport-node";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { request, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { afterAll, beforeAll, expect, test } from "vitest";
import { HOSTILE_TEMPLATE, startHostileUpstream, type HostileUpstream } from "../fixtures/hostileUpstream.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// An upstream may send `notifications/resources/updated` as fast as it likes, and a client may
// hold a stream open without reading it. Each was unbounded: every update went to every gateway,
// and everything written to a stream its client did not read stayed in the gateway. (And an
// upstream may say its resources may go to any shared cache, which only the gateway can know.)

let nats: NatsServer;
let stack: Stack;
let hostile: HostileUpstream;
let observer: NatsConnection;

const META = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientInfo": { name: "t", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
/** An exposed URI of the hostile upstream's template, `length` characters long at most. */
const uri = (id: string, length = 0) => `hostile+${HOSTILE_TEMPLATE.replace("{id}", id)}${"x".repeat(Math.max(0, length - 30))}`;

async function listener(uris: string[]) {
  const heard: string[] = [];
  const client = new ModernClient({ name: "reader", version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  client.setNotificationHandler("notifications/resources/updated", (n) => void heard.push(n.params.uri));
  await client.connect(new ModernTransport(new URL(stack.mcpUrl("flood"))));
  const subscription = await client.listen({ resourceSubscriptions: uris });
  expect(subscription.honoredFilter.resourceSubscriptions).toEqual(uris);
  return { client, heard };
}

beforeAll(async () => {
  nats = await startNats();
  [stack, hostile] = await Promise.all([startStack(nats.url), startHostileUpstream()]);
  await registerUpstreams(stack, { name: "hostile", transport: { type: "streamable-http", url: hostile.url } });
  const created = await stack.admin.post("/v1/virtual-servers", { name: "flood", tools: [{ upstream: "hostile", tool: "anything" }], resources: [{ upstream: "hostile", uriTemplate: HOSTILE_TEMPLATE }] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  observer = await connectAs(nats, "operator", "observer");
});

afterAll(async () => {
  await observer?.close();
  await stack?.close();
  await hostile?.close();
  await nats?.stop();
});

test("attack: an upstream flooding resource updates reaches the bus at most once per URI and window, and the last update still arrives", async () => {
  let onBus = 0;
  const counted = observer.subscribe(Subjects.resourceUpdated("hostile"), { callback: () => void onBus++ });
  const { client, heard } = await listener([uri("a"), uri("b")]);
  try {
    // With updates of 200 URIs nobody subscribed to: before, each was on the bus too (10,000 a second).
    const sent = await hostile.floodUpdates(1_000, 200);
    expect(sent).toBeGreaterThan(500);
    // Two URIs, at most one each per 100 ms window (plus the window a flood opens and the one it leaves).
    await eventually(() => (heard.filter((u) => u === uri("a")).length > 0 && heard.filter((u) => u === uri("b")).length > 0 ? true : undefined), 3_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    expect(onBus).toBeLessThanOrEqual(2 * 14);
    expect(heard.length).toBe(onBus);
    // The flood is over; one more update is heard, alone.
    const before = heard.length;
    await hostile.floodUpdates(1);
    await eventually(() => (heard.length > before ? true : undefined), 3_000, 20);
  } finally {
    counted.unsubscribe();
    await client.close();
  }
});

/**
 * Floods the subscribed URIs while the response is not read, in rounds, until the gateway closes
 * its end of the connection (or a minute has passed); then reads what the sockets hold. Rounds,
 * not a fixed time: how fast the sockets fill depends on how busy the machine is.
 */
async function floodUnread({ response, gatewaySide }: Unread) {
  let closedByGateway = false;
  gatewaySide.once("close", () => (closedByGateway = true));
  let sent = 0;
  for (const until = Date.now() + 60_000; !closedByGateway && Date.now() < until; ) sent += await hostile.floodUpdates(2_000);
  expect(sent).toBeGreaterThan(1_000);
  let received = 0;
  const ended = new Promise<string>((resolve) => {
    response.on("data", (chunk: Buffer) => void (received += chunk.length));
    for (const event of ["end", "aborted", "error", "close"]) response.once(event, () => resolve(event));
  });
  response.resume();
  await Promise.race([ended, new Promise((r) => setTimeout(r, 10_000))]);
  return { closedByGateway, received };
}

interface Unread {
  response: IncomingMessage;
  /** The gateway's socket of the same connection: closed when the gateway gives up on the client. */
  gatewaySide: Socket;
}

/** Sends one request and resolves with its response unread (paused after the head), and the gateway's end of its connection. */
async function unread(url: URL, method: string, headers: Record<string, string>, body?: string): Promise<Unread> {
  const accepted: Socket[] = [];
  const server = stack.gateway.app.server;
  const onConnection = (socket: Socket) => void accepted.push(socket);
  server.on("connection", onConnection);
  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(url, { method, headers }, (res) => (res.pause(), resolve(res)));
      req.on("error", reject).end(body);
    });
    const gatewaySide = accepted.find((socket) => socket.remotePort === response.socket.localPort);
    expect(gatewaySide).toBeDefined();
    return { response, gatewaySide: gatewaySide! };
  } finally {
    server.off("connection", onConnection);
  }
}

test("attack: a 2025 session's GET stream whose client does not read is closed once its backlog passes 1 MiB", async () => {
  const url = new URL(stack.mcpUrl("flood"));
  const base = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const post = (body: unknown, session?: string) => fetch(url, { method: "POST", headers: { ...base, ...(session ? { "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" } : {}) }, body: JSON.stringify(body) });
  const init = await post({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "t", version: "1" } } });
  const session = init.headers.get("mcp-session-id")!;
  await init.text();
  await (await post({ jsonrpc: "2.0", method: "notifications/initialized" }, session)).text();
  for (let i = 0; i < 100; i++) {
    const subscribed = await post({ jsonrpc: "2.0", id: i + 1, method: "resources/subscribe", params: { uri: uri(`s${i}`, 4_000) } }, session);
    expect(subscribed.status).toBe(200);
    await subscribed.text();
  }
  const stream = await unread(url, "GET", { accept: "text/event-stream", "mcp-session-id": session, "mcp-protocol-version": "2025-11-25" });
  try {
    expect(stream.response.statusCode).toBe(200);
    // Before: never closed, and everything the upstream sent kept for the client.
    const { closedByGateway, received } = await floodUnread(stream);
    expect(closedByGateway).toBe(true);
    expect(received).toBeGreaterThan(1024 * 1024);
  } finally {
    stream.response.destroy();
  }
}, 120_000);

test("attack: a listen stream whose client does not read is closed once its backlog passes 1 MiB; a reading stream is not", async () => {
  // 100 URIs (the most one stream subscribes) of ~4 KB: ~4 MB of updates a second, after the window.
  const uris = Array.from({ length: 100 }, (_, i) => uri(String(i), 4_000));
  const reading = await listener([uri("control")]);
  const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "subscriptions/listen", params: { notifications: { resourceSubscriptions: uris }, _meta: META } });
  const headers = { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen" };
  const url = new URL(stack.mcpUrl("flood"));
  const stream = await unread(url, "POST", headers, body);
  try {
    expect(stream.response.statusCode).toBe(200);
    expect(stream.response.headers["content-type"]).toContain("text/event-stream");
    const { closedByGateway, received } = await floodUnread(stream);
    expect(closedByGateway).toBe(true);
    expect(received).toBeGreaterThan(1024 * 1024);
    // The reading client's stream stays open and hears the next update.
    const before = reading.heard.length;
    await hostile.floodUpdates(1);
    await eventually(() => (reading.heard.length > before ? true : undefined), 3_000, 20);
  } finally {
    stream.response.destroy();
    await reading.client.close();
  }
}, 120_000);

test("attack: an upstream that marks its resources/read answer public for an hour does not make the agent's answer so", async () => {
  const client = new ModernClient({ name: "reader", version: "1.0.0" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } });
  await client.connect(new ModernTransport(new URL(stack.mcpUrl("flood"))));
  try {
    const read = await client.request({ method: "resources/read", params: { uri: uri("cached") } });
    expect(read.contents).toEqual([{ uri: uri("cached"), text: "read" }]);
    // Before: "public", as the upstream said, for a resource some grants may deny (which callers may
    // see a thing depends on their grants, which no upstream knows).
    expect(read.cacheScope).toBe("private");
    // Nor does it say for how long an agent may reuse it (it said an hour): a grant or selection may change first.
    expect(read.ttlMs).not.toBe(3_600_000);
  } finally {
    await client.close();
  }
});
