import type { NatsServer } from "@manifold/nats-server";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { createMcpHandler, Server as ModernServer } from "@modelcontextprotocol/server";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveSessions } from "../fixtures/sessionServer.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { connectWithKey } from "../helpers/mcp.js";
import { MODERN } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// An upstream that pushes back: HTTP 429 (its rate limit) and 503 (overloaded for a while), each
// with a Retry-After, a page (or a JSON-RPC error) quoting a secret, and a header carrying it.
// What the agent should hear: a retryable code with `retryAfterMs` (and `Retry-After` on the
// gateway's own answer); what must not happen: the shared session dropped, other tenants cut off,
// the secret echoed, or the circuit probing before the upstream said to, or long after.

const SECRET = "upstream-secret-5f1e";
const TOOLS = ["echo", "limited", "busy"];

/** What the fixtures share with the tests: when `busy` answers 503, and what each pushed-back tool saw. */
interface Pushback {
  /** `busy` answers 503 until then (epoch ms). */
  busyUntil: number;
  /** `busy`'s Retry-After (delta-seconds). */
  busyRetryAfter: string;
  /** When each `busy` call reached the upstream, and whether it was refused. */
  busyHits: { at: number; refused: boolean }[];
  /** 2025: sessions the connector opened (initialize requests). */
  sessions: number;
}

const pushback = (): Pushback => ({ busyUntil: 0, busyRetryAfter: "2", busyHits: [], sessions: 0 });

/**
 * Answers a pushed-back call itself (true), or leaves it to the MCP server (false). `limited` is
 * always 429 (a 2025 upstream's Retry-After in delta-seconds, a 2026-07-28 one's an HTTP-date);
 * `busy` is 503 while `state.busyUntil` has not passed.
 */
function refuse(state: Pushback, modern: boolean, tool: string | undefined, id: unknown, res: ServerResponse): boolean {
  const page = modern
    ? JSON.stringify({ jsonrpc: "2.0", id, error: { code: -32000, message: `slow down, holder of ${SECRET}` } })
    : `<html>too many requests for ${SECRET}</html>`;
  const head = { "content-type": modern ? "application/json" : "text/html", "x-upstream-token": SECRET };
  if (tool === "limited") {
    const retryAfter = modern ? new Date(Date.now() + 10_000).toUTCString() : "7";
    res.writeHead(429, { ...head, "retry-after": retryAfter }).end(page);
    return true;
  }
  if (tool !== "busy") return false;
  const refused = Date.now() < state.busyUntil;
  state.busyHits.push({ at: Date.now(), refused });
  if (!refused) return false;
  res.writeHead(503, { ...head, "retry-after": state.busyRetryAfter }).end(page);
  return true;
}

/** A 2025 Streamable HTTP upstream with sessions (SDK 1.x), its pushed-back calls answered before its transport. */
async function startLegacy(state: Pushback) {
  return serveSessions(
    () => {
      const server = new Server({ name: "legacy", version: "1.0.0" }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS.map((name) => ({ name, inputSchema: { type: "object" as const } })) }));
      server.setRequestHandler(CallToolRequestSchema, (request) => ({ content: [{ type: "text" as const, text: `${request.params.name} ok` }] }));
      return server;
    },
    0,
    (_req, res, body) => {
      const message = body as { id?: unknown; method?: string; params?: { name?: string } } | undefined;
      if (message?.method === "initialize") state.sessions++;
      return message?.method === "tools/call" && refuse(state, false, message.params?.name, message.id, res);
    },
  );
}

/**
 * A 2025 upstream over the legacy SSE transport (SDK 1.x): its calls go through the SDK's client, not
 * the direct caller, so this is the connector's SDK lane. Its pushed-back POSTs are answered before
 * the transport reads them.
 */
async function startSse(state: Pushback) {
  const transports = new Map<string, SSEServerTransport>();
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.method === "GET") {
      const transport = new SSEServerTransport("/messages", res);
      transports.set(transport.sessionId, transport);
      state.sessions++;
      const server = new Server({ name: "sse", version: "1.0.0" }, { capabilities: { tools: {} } });
      server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOLS.map((name) => ({ name, inputSchema: { type: "object" as const } })) }));
      server.setRequestHandler(CallToolRequestSchema, (request) => ({ content: [{ type: "text" as const, text: `${request.params.name} ok` }] }));
      return void server.connect(transport);
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { id?: unknown; method?: string; params?: { name?: string } };
      if (body.method === "tools/call" && refuse(state, false, body.params?.name, body.id, res)) return;
      const transport = transports.get(new URL(req.url!, "http://x").searchParams.get("sessionId") ?? "");
      if (!transport) return void res.writeHead(404).end();
      void transport.handlePostMessage(req, res, body);
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/sse`,
    close: async () => {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

/** A 2026-07-28 upstream (SDK 2.x, no sessions), its pushed-back calls answered on their `Mcp-Name`, body unread. */
async function startModern(state: Pushback) {
  const handler = createMcpHandler(
    () => {
      const server = new ModernServer({ name: "modern", version: "1.0.0" }, { capabilities: { tools: {} } });
      server.setRequestHandler("tools/list", () => ({ tools: TOOLS.map((name) => ({ name, inputSchema: { type: "object" as const } })) }));
      server.setRequestHandler("tools/call", ({ params }) => ({ content: [{ type: "text" as const, text: `${params.name} ok` }] }));
      return server;
    },
    { legacy: "reject" },
  );
  const node = toNodeHandler(handler);
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const tool = req.headers["mcp-name"];
    if (req.headers["mcp-method"] === "tools/call" && refuse(state, true, typeof tool === "string" ? tool : undefined, null, res)) return void req.resume();
    void node(req, res);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`,
    close: async () => {
      await handler.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

type Answer = { status: number; retryAfter: string | null; text: string; error?: { code: number; message: string; data?: any }; result?: unknown };

/** One tools/call as raw HTTP in the agent's era (2025: a fresh session), for the answer's status and headers too. */
async function rawCall(era: "2025" | "2026", url: string, key: string, name: string): Promise<Answer> {
  const base = { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${key}` };
  const post = (headers: Record<string, string>, body: unknown) => fetch(url, { method: "POST", headers: { ...base, ...headers }, body: JSON.stringify(body) });
  let res: Response;
  if (era === "2026") {
    const _meta = { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": {} };
    res = await post({ "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": name }, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: {}, _meta } });
  } else {
    const init = await post({}, { jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });
    const session = init.headers.get("mcp-session-id")!;
    await init.text();
    const headers = { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" };
    await (await post(headers, { jsonrpc: "2.0", method: "notifications/initialized" })).text();
    res = await post(headers, { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: {} } });
  }
  const text = await res.text();
  const json = text.startsWith("{") ? text : (text.split("\n").filter((l) => l.startsWith("data:")).at(-1)?.slice(5) ?? "{}");
  return { status: res.status, retryAfter: res.headers.get("retry-after"), text, ...(JSON.parse(json) as { error?: Answer["error"]; result?: unknown }) };
}

describe("an upstream that answers calls with HTTP 429 and 503 and a Retry-After", () => {
  let nats: NatsServer;
  let stack: Stack;
  const states = { legacy: pushback(), modern: pushback(), sse: pushback() };
  let upstreams: { close(): Promise<void> }[] = [];
  let keys: Record<string, string>;
  let names: Record<string, string>;

  beforeAll(async () => {
    nats = await startNats();
    let legacy: Awaited<ReturnType<typeof startLegacy>>;
    let modern: Awaited<ReturnType<typeof startModern>>;
    let sse: Awaited<ReturnType<typeof startSse>>;
    [stack, legacy, modern, sse] = await Promise.all([
      startStack(nats.url, { GATEWAY_AUTH: "required", CONNECTOR_BREAKER_THRESHOLD: "3", CONNECTOR_BREAKER_COOLDOWN_MS: "5000" }),
      startLegacy(states.legacy),
      startModern(states.modern),
      startSse(states.sse),
    ]);
    upstreams = [legacy, modern, sse];
    await registerUpstreams(
      stack,
      { name: "legacy", transport: { type: "streamable-http", url: legacy.url } },
      { name: "modern", transport: { type: "streamable-http", url: modern.url } },
      { name: "sse", transport: { type: "sse", url: sse.url } },
    );
    names = await createVirtualServer(stack, "pushback", ["legacy", "modern", "sse"].flatMap((upstream) => TOOLS.map((tool) => ({ upstream, tool }))));
    keys = await grantedConsumers(stack, "pushback", ["mallory", "alice", "bob"]);
  });

  afterAll(async () => {
    await stack?.close();
    await Promise.all(upstreams.map((u) => u.close()));
    await nats?.stop();
  });

  describe.each(["legacy", "modern", "sse"] as const)("a %s upstream", (upstream) => {
    test.each(["2025", "2026"] as const)("a 429 is upstream_rate_limited, retryable, with retryAfterMs and Retry-After, and nothing of the upstream's page or headers (a %s agent)", async (era) => {
      const answer = await rawCall(era, stack.mcpUrl("pushback"), keys.bob!, names[`${upstream}/limited`]!);
      expect(answer.status).toBe(200);
      expect(answer.error?.data).toMatchObject({ code: "upstream_rate_limited", httpStatus: 429 });
      expect(answer.error?.code).toBe(era === "2026" ? -31017 : -32017);
      // 2025: "7" (delta-seconds); 2026-07-28: an HTTP-date 10 s ahead, to the second.
      const retryAfterMs = answer.error?.data.retryAfterMs as number;
      if (upstream !== "modern") expect(retryAfterMs).toBe(7_000);
      else expect(retryAfterMs > 8_000 && retryAfterMs <= 10_000, `retryAfterMs ${retryAfterMs}`).toBe(true);
      expect(answer.retryAfter).toBe(String(Math.ceil(retryAfterMs / 1000)));
      expect(answer.text).not.toContain(SECRET);
      expect(answer.text).not.toContain("slow down");
    });

    test("mallory's 429s neither drop the shared session nor cut alice off", async () => {
      await using mallory = await connectWithKey(stack.mcpUrl("pushback"), keys.mallory!);
      await using alice = await connectWithKey(stack.mcpUrl("pushback"), keys.alice!);
      expect((await alice.callTool({ name: names[`${upstream}/echo`]!, arguments: {} })).isError).toBeFalsy();
      const sessionsBefore = states[upstream].sessions;
      let stop = false;
      const heard: string[] = [];
      const flood = (async () => {
        while (!stop) await mallory.callTool({ name: names[`${upstream}/limited`]!, arguments: {} }).catch((error: { data?: { code?: string } }) => heard.push(String(error.data?.code)));
      })();
      const failures: string[] = [];
      for (const until = Date.now() + 2_000; Date.now() < until; ) {
        await alice.callTool({ name: names[`${upstream}/echo`]!, arguments: {} }).then(
          (result) => void (result.isError && failures.push(JSON.stringify(result.content))),
          (error: Error) => void failures.push(error.message),
        );
        await new Promise((r) => setTimeout(r, 20));
      }
      stop = true;
      await flood;
      expect({ failures, sessionsDropped: states[upstream].sessions - sessionsBefore }).toEqual({ failures: [], sessionsDropped: 0 });
      expect(heard).toContain("upstream_rate_limited");
      const health = JSON.stringify((await stack.admin.get(`/v1/upstreams/${upstream}`)).body);
      expect(health).not.toContain(SECRET);
    });

    test("sustained 503s open the circuit until the upstream's Retry-After, not before, and it closes promptly after", async () => {
      const state = states[upstream];
      await using alice = await connectWithKey(stack.mcpUrl("pushback"), keys.alice!);
      const sessionsBefore = state.sessions;
      state.busyHits = [];
      state.busyRetryAfter = "2";
      state.busyUntil = Date.now() + 1_000;
      const errors: { code?: string; circuit?: string; retryAfterMs?: number; httpStatus?: number }[] = [];
      let recoveredAt: number | undefined;
      for (const until = Date.now() + 8_000; Date.now() < until && recoveredAt === undefined; ) {
        await alice.callTool({ name: names[`${upstream}/busy`]!, arguments: {} }).then(
          () => void (recoveredAt = Date.now()),
          (error: { data?: (typeof errors)[number] }) => void errors.push(error.data ?? {}),
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      const refused = state.busyHits.filter((hit) => hit.refused);
      // Three 503s in a row (the threshold) open the circuit; each said when to come back.
      expect(refused).toHaveLength(3);
      expect(errors.slice(0, 3)).toEqual(Array(3).fill({ code: "upstream_unavailable", httpStatus: 503, retryAfterMs: 2_000 }));
      // While open, calls fail fast and say how long is left.
      const open = errors.slice(3);
      expect(open.length).toBeGreaterThan(5);
      for (const error of open) expect(error).toMatchObject({ code: "upstream_unavailable", circuit: "open", retryAfterMs: expect.any(Number) });
      expect(Math.max(...open.map((e) => e.retryAfterMs!))).toBeLessThanOrEqual(2_000);
      // The probe goes when Retry-After has passed (not at the 5 s cooldown), and not before.
      const openedAt = refused.at(-1)!.at;
      const probe = state.busyHits.find((hit) => !hit.refused)!;
      expect(probe.at - openedAt).toBeGreaterThanOrEqual(1_900);
      // (Before: the 5 s cooldown, and a 2025 session dropped and opened again: 5.3 s after the last 503.)
      expect(recoveredAt! - openedAt).toBeLessThan(4_000);
      // The session was not dropped for an overloaded upstream.
      expect(state.sessions - sessionsBefore).toBe(0);
    });
  });
});
