import type { NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient } from "../helpers/mcp.js";
import { listening } from "../helpers/listening.js";
import { recordSpans } from "../helpers/spans.js";
import { connectAs, startNats, startStack, type Stack } from "../helpers/stack.js";

// Tracing on. A caller's pass-through credentials under header names no list calls credential-like
// (`X-Tenant-Pass`, `X-Acme-Sig`, `X-Upstream-Ident`) and in no credential's shape (40 hex digits,
// opaque base64url, a UUID): the gateway forwards them, a debug build of the upstream quotes them
// back in a JSON-RPC error (of a call, and of its handshake). Whatever the header's name, the value
// is the caller's credential: no log, span, health reason, audit record or stored event holds it.

const PASSED = {
  "X-Tenant-Pass": randomBytes(20).toString("hex"),
  "X-Acme-Sig": randomBytes(24).toString("base64url"),
  "X-Upstream-Ident": crypto.randomUUID(),
};
/** A header that is not a credential (a region), also passed through. */
const REGION = { "X-Region": "eu-west-1-zone-b" };

/**
 * A 2025 Streamable HTTP upstream (no sessions): `debug` fails with a JSON-RPC error quoting the
 * request's headers; `whoami` answers them as its result; a request carrying `x-init-fails` is
 * refused at initialize with the same error.
 */
async function startEchoing(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST") return void res.writeHead(405).end();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const message = JSON.parse(Buffer.concat(chunks).toString()) as { id?: number; method: string; params?: { name?: string } };
    if (message.id === undefined) return void res.writeHead(202).end();
    const reply = (payload: object) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, ...payload }));
    };
    const echoed = { error: { code: -32000, message: `refused: ${JSON.stringify(req.headers)}`, data: { headers: req.headers } } };
    switch (message.method) {
      case "initialize":
        if (req.headers["x-init-fails"]) return reply(echoed);
        return reply({ result: { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "echoing", version: "1" } } });
      case "tools/list":
        return reply({ result: { tools: [{ name: "debug", inputSchema: { type: "object" } }, { name: "whoami", inputSchema: { type: "object" } }] } });
      case "tools/call":
        if (message.params?.name === "whoami") return reply({ result: { content: [{ type: "text", text: JSON.stringify(req.headers) }] } });
        return reply(echoed);
      default:
        return reply({ error: { code: -32601, message: "method not found" } });
    }
  });
  return listening(server);
}

let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof startEchoing>>;
let names: Record<string, string>;
const logs: string[] = [];
const spans = recordSpans();
const values = Object.values(PASSED);

const agentWith = (headers: Record<string, string>, upstream = "echoing") =>
  connectClient(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("calls")), { requestInit: { headers: { "x-manifold-upstream-headers": JSON.stringify({ [upstream]: headers }) } } }));

beforeAll(async () => {
  spans.register();
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { HEALTH_HEARTBEAT_MS: "300" }, { logs }), startEchoing()]);
  await registerUpstreams(stack, {
    name: "echoing",
    transport: { type: "streamable-http", url: upstream.url, protocol: "2025" },
    options: { passthroughHeaders: [...Object.keys(PASSED), ...Object.keys(REGION), "X-Init-Fails"] },
  });
  // The same upstream, where the operator says the region is no credential.
  await registerUpstreams(stack, {
    name: "regional",
    transport: { type: "streamable-http", url: upstream.url, protocol: "2025" },
    options: { passthroughHeaders: [...Object.keys(PASSED), ...Object.keys(REGION)], plainPassthroughHeaders: Object.keys(REGION) },
  });
  names = await createVirtualServer(stack, "calls", [
    { upstream: "echoing", tool: "debug" },
    { upstream: "echoing", tool: "whoami" },
    { upstream: "regional", tool: "debug" },
  ]);
});

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await spans[Symbol.asyncDispose]();
});

/** Where each canary was found: `sink: header`. */
function found(sinks: Record<string, string>): string[] {
  return Object.entries(sinks).flatMap(([sink, text]) => Object.entries(PASSED).flatMap(([name, value]) => (text.includes(value) ? [`${sink}: ${name}`] : [])));
}

test("attack: opaque pass-through credentials under unknown names, echoed by the upstream, reach no error, log, span, health reason, audit record or stream", async () => {
  const sinks: Record<string, string> = {};
  {
    await using agent = await agentWith({ ...PASSED, ...REGION });
    const error = await rpcError(agent.callTool({ name: names["echoing/debug"]!, arguments: {} }));
    // The headers went upstream (the error quotes them by name).
    expect(error.message).toContain("x-tenant-pass");
    sinks["call error"] = `${error.message} ${JSON.stringify(error.data)}`;
    // 16 characters under a name the operator did not call plain: withheld from the error as a credential would be.
    expect(sinks["call error"]).not.toContain(REGION["X-Region"]);
    // The caller's own result is its own: what it sent comes back as it was, the region too.
    const result = JSON.stringify(await agent.callTool({ name: names["echoing/whoami"]!, arguments: {} }));
    expect(result).toContain(REGION["X-Region"]);
    expect(values.filter((v) => result.includes(v))).toEqual(values);
  }
  {
    // A caller's session refused at its handshake, the refusal quoting the headers.
    await using agent = await agentWith({ ...PASSED, "X-Init-Fails": "yes" });
    const error = await rpcError(agent.callTool({ name: names["echoing/debug"]!, arguments: {} }));
    sinks["handshake error"] = `${error.message} ${JSON.stringify(error.data)}`;
    expect(sinks["handshake error"]).toContain("x-tenant-pass");
  }
  {
    // Where the operator calls X-Region plain, the error reads it; the credentials stay withheld.
    // (Another region: a value is withheld connector-wide while any session withholds it, as the first agent's does.)
    const region = "ap-southeast-2-zone-c";
    await using agent = await agentWith({ ...PASSED, "X-Region": region }, "regional");
    const error = await rpcError(agent.callTool({ name: names["regional/debug"]!, arguments: {} }));
    sinks["plain-region call error"] = `${error.message} ${JSON.stringify(error.data)}`;
    expect(sinks["plain-region call error"]).toContain(region);
  }
  await new Promise((r) => setTimeout(r, 1_000));
  for (const name of ["echoing", "regional"]) sinks[`GET /v1/upstreams/${name}`] = JSON.stringify((await stack.admin.get(`/v1/upstreams/${name}`)).body);
  sinks["GET /v1/audit"] = JSON.stringify((await stack.admin.get("/v1/audit")).body);
  const nc = await connectAs(nats, "operator", "inspector");
  try {
    const jsm = await jetstreamManager(nc);
    for await (const info of jsm.streams.list()) {
      let text = "";
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const msg = await jsm.streams.getMessage(info.config.name, { seq }).catch(() => undefined);
        if (msg) text += msg.string() + JSON.stringify(msg.header ? [...msg.header] : []);
      }
      sinks[`stream ${info.config.name}`] = text;
    }
  } finally {
    await nc.close();
  }
  const finished = spans.exporter.getFinishedSpans();
  sinks.spans = JSON.stringify(finished.map((s) => ({ status: s.status, attributes: s.attributes, events: s.events })));
  sinks.logs = logs.join("\n");
  const where = found(sinks);
  console.info(`opaque pass-through credentials: ${values.length} canaries searched in ${Object.keys(sinks).length} sinks (${finished.length} spans, ${logs.length} log lines); found ${where.length}: ${where.join("; ")}`);
  expect(where).toEqual([]);
});
