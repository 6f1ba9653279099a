import type { NatsServer } from "@manifold/nats-server";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectClient, connectHttp, eventually } from "../helpers/mcp.js";
import { listening } from "../helpers/listening.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const SECRET = "Bearer sk-live-ATTACK3-static-upstream-key-0123456789";

/**
 * A 2025 Streamable HTTP upstream (no sessions) that works for initialize and tools/list but whose
 * tools/call (or, with `failAll`, every request) answers with an HTTP error page that echoes the
 * request headers it got, as many debug error pages and misconfigured proxies do.
 */
async function startEchoingUpstream(failAll: boolean): Promise<{ url: string; close(): Promise<void> }> {
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => resolve(body));
    });
  const server: Server = createServer(async (req, res) => {
    if (req.method !== "POST") return void res.writeHead(405).end();
    const message = JSON.parse(await read(req)) as { id?: number; method: string };
    const echo = () => {
      res.writeHead(failAll ? 500 : 401, { "content-type": "text/plain" });
      res.end(`Unauthorized. Request headers: authorization=${req.headers.authorization}`);
    };
    if (failAll) return echo();
    if (message.id === undefined) return void res.writeHead(202).end();
    const answer = (result: unknown) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, result }));
    };
    if (message.method === "initialize") return answer({ protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "echoing", version: "1" } });
    if (message.method === "tools/list") return answer({ tools: [{ name: "leak", description: "d", inputSchema: { type: "object" } }] });
    if (message.method === "tools/call") return echo();
    return answer({});
  });
  return listening(server);
}

describe("attack: a static upstream credential echoed in an upstream's HTTP error page", () => {
  let nats: NatsServer;
  let stack: Stack;
  let calls: Awaited<ReturnType<typeof startEchoingUpstream>>;
  let down: Awaited<ReturnType<typeof startEchoingUpstream>>;
  const logs: string[] = [];

  beforeAll(async () => {
    nats = await startNats();
    [stack, calls, down] = await Promise.all([
      startStack(nats.url, { HEALTH_HEARTBEAT_MS: "300" }, { logs, secretsEnv: { MANIFOLD_SECRET_UP_TOKEN: SECRET } }),
      startEchoingUpstream(false),
      startEchoingUpstream(true),
    ]);
    await registerUpstreams(stack, { name: "echoing", transport: { type: "streamable-http", url: calls.url, secretHeaders: { Authorization: "env:MANIFOLD_SECRET_UP_TOKEN" } } });
  });

  afterAll(async () => {
    await stack?.close();
    await calls?.close();
    await down?.close();
    await nats?.stop();
  });

  test("an agent calling a tool never learns the upstream's static credential", async () => {
    const names = await createVirtualServer(stack, "vs", [{ upstream: "echoing", tool: "leak" }]);
    await using agent = await connectHttp(stack.mcpUrl("vs"));
    const error = await rpcError(agent.callTool({ name: names["echoing/leak"]!, arguments: {} }));
    // The upstream's health as the admin API (and the console) show it, after that one call.
    const health = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/upstreams/echoing");
      return body.health?.status === "down" ? body.health : undefined;
    }, 10_000);
    expect(`${error.message} ${JSON.stringify(error.data)}`).not.toContain("sk-live-ATTACK3");
    expect(JSON.stringify(health)).not.toContain("sk-live-ATTACK3");
  });

  test("the admin API's discovery error and health reason, and the logs, never hold the static credential", async () => {
    const registered = await stack.admin.post("/v1/upstreams", { name: "down", transport: { type: "streamable-http", url: down.url, secretHeaders: { Authorization: "env:MANIFOLD_SECRET_UP_TOKEN" } } });
    const health = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/upstreams/down");
      return body.health?.replicas?.[0]?.reason ? body.health : undefined;
    }, 10_000).catch(() => undefined);
    const leakedLogs = logs.filter((l) => l.includes("sk-live-ATTACK3"));
    expect(JSON.stringify(registered.body)).not.toContain("sk-live-ATTACK3");
    expect(JSON.stringify(health ?? null)).not.toContain("sk-live-ATTACK3");
    expect(leakedLogs).toEqual([]);
  });
});

const API_KEY = "zzsk-live-UPSTREAMATTACK-0123456789abcdef";
/**
 * `cookie`: tools/call refused quoting the value of the `session` cookie alone, as a server that parsed it does;
 * `serverInfo`: the key quoted in the `serverInfo` its initialize answers with (a debug build's version);
 * `plain`: initialize answered with a JSON content type and a plain-text body that starts with the key;
 * `basic`: tools/call refused quoting the user and password of its Basic authorization, decoded.
 */
type EchoAt = "initialize" | "tools/list" | "tools/call" | "result" | "question" | "listing" | "named" | "cookie" | "serverInfo" | "plain" | "basic";

/**
 * A 2025 Streamable HTTP upstream that answers one method with a JSON-RPC error quoting the
 * credential it was sent (`X-Api-Key`), in its message and its data, as debug builds of servers do.
 */
async function startJsonRpcEchoingUpstream(at: EchoAt): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.method !== "POST") return void res.writeHead(405).end();
      const message = JSON.parse(body) as { id?: number; method: string };
      // A notification, or the agent's answer to a question: accepted.
      if (message.id === undefined || message.method === undefined) return void res.writeHead(202).end();
      const key =
        at === "cookie" ? String(/(?:^|;\s*)session=([^;]*)/.exec(req.headers.cookie ?? "")?.[1])
        : at === "basic" ? Buffer.from(String(req.headers.authorization).replace(/^Basic /, ""), "base64").toString()
        : String(req.headers["x-api-key"]);
      const answer = (payload: object) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ jsonrpc: "2.0", id: message.id, ...payload }));
      };
      if (message.method === at || ((at === "cookie" || at === "basic") && message.method === "tools/call")) return answer({ error: { code: -32000, message: `denied for key ${key}`, data: { request: { headers: { "x-api-key": key } } } } });
      // A debug tool that answers with the request it got: text, structured content (a key too), an isError result.
      if (at === "result" && message.method === "tools/call") {
        const request = { headers: { "x-api-key": key, [key]: "as a key" }, quoted: `"${key}"` };
        const result = { content: [{ type: "text", text: `called with key ${key}` }], structuredContent: { request }, isError: true };
        const progressToken = (message as { params?: { _meta?: { progressToken?: unknown } } }).params?._meta?.progressToken;
        if (progressToken === undefined) return answer({ result });
        // Asked for progress: a progress message quoting the key on the call's stream, then the result.
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken, progress: 1, message: `working with ${key}` } })}\n\n`);
        res.end(`data: ${JSON.stringify({ jsonrpc: "2.0", id: message.id, result })}\n\n`);
        return;
      }
      // A debug question quoting the request's key, asked on the call's stream before its result.
      if (at === "question" && message.method === "tools/call") {
        const question = { mode: "form", message: `confirm the call made with ${key}`, requestedSchema: { type: "object", properties: { ok: { type: "boolean", description: `sent as ${key}` } } } };
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: "q1", method: "elicitation/create", params: question })}\n\n`);
        res.end(`data: ${JSON.stringify({ jsonrpc: "2.0", id: message.id, result: { content: [{ type: "text", text: "asked" }] } })}\n\n`);
        return;
      }
      if (message.method === "initialize" && at === "plain") {
        res.writeHead(200, { "content-type": "application/json" });
        return void res.end(`${key} is not a key this server knows; ask its owner for one`);
      }
      // A debug build naming itself with the request's key, padded with a megabyte.
      const serverInfo = at === "serverInfo" ? { name: "echoing", version: `debug (x-api-key ${key})`, description: "x".repeat(1024 * 1024), build: { key } } : { name: "echoing", version: "1" };
      if (message.method === "initialize") return answer({ result: { protocolVersion: "2025-06-18", capabilities: { tools: {} }, serverInfo } });
      const description = at === "listing" ? `calls the API with key ${key}` : "d";
      // A tool whose name holds a credential value (a short `secretEnv` value, say, that is also a word of its name).
      const name = at === "named" ? `run-${key}` : "t";
      if (message.method === "tools/list") return answer({ result: { tools: [{ name, description, inputSchema: { type: "object", properties: { key: { type: "string", default: key } } } }] } });
      if (at === "named" && message.method === "tools/call") return answer({ result: { content: [{ type: "text", text: `called ${(message as { params?: { name?: string } }).params?.name === name ? "by its name" : "by another name"}` }] } });
      return answer({ result: { content: [{ type: "text", text: "ok" }] } });
    });
  });
  return listening(server);
}

describe("attack: a static upstream credential echoed in an upstream's JSON-RPC errors", () => {
  let nats: NatsServer;
  let stack: Stack;
  const logs: string[] = [];
  const upstreams: Awaited<ReturnType<typeof startJsonRpcEchoingUpstream>>[] = [];
  const secretHeaders = { "X-Api-Key": "env:MANIFOLD_SECRET_ZZ_KEY" };
  const register = async (name: string, at: EchoAt) => {
    const upstream = await startJsonRpcEchoingUpstream(at);
    upstreams.push(upstream);
    return stack.admin.post("/v1/upstreams", { name, transport: { type: "streamable-http", url: upstream.url, secretHeaders, protocol: "2025" } });
  };

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, { HEALTH_HEARTBEAT_MS: "300" }, { logs, secretsEnv: { MANIFOLD_SECRET_ZZ_KEY: API_KEY } });
  });
  afterAll(async () => {
    await stack?.close();
    for (const upstream of upstreams) await upstream.close();
    await nats?.stop();
  });

  test("refused at initialize: not in the registration's answer, the health reason or the logs", async () => {
    const registered = await register("echoinit", "initialize");
    const health = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/upstreams/echoinit");
      return body.health?.replicas?.[0]?.reason ? body.health : undefined;
    }, 10_000);
    // The reason still says what happened, the value withheld.
    expect(JSON.stringify(health)).toContain("denied for key [redacted]");
    expect(JSON.stringify(registered.body)).not.toContain(API_KEY);
    expect(JSON.stringify(health)).not.toContain(API_KEY);
    expect(logs.filter((l) => l.includes(API_KEY))).toEqual([]);
  });

  test("a plain-text answer starting with the key: its start is not quoted in the registration's answer or the health reason", async () => {
    const registered = await register("echoplain", "plain");
    const health = await eventually(async () => {
      const { body } = await stack.admin.get("/v1/upstreams/echoplain");
      return body.health?.replicas?.[0]?.reason ? body.health : undefined;
    }, 10_000);
    // The parser's message quoted the body's first characters: the key's.
    const start = API_KEY.slice(0, 10);
    expect(JSON.stringify(registered.body)).not.toContain(start);
    expect(JSON.stringify(health)).not.toContain(start);
  });

  test("refused at tools/list: not in the registration's discovery answer", async () => {
    const registered = await register("echolist", "tools/list");
    expect(JSON.stringify(registered.body)).toContain("[redacted]");
    expect(JSON.stringify(registered.body)).not.toContain(API_KEY);
  });

  test("refused at tools/call: the agent gets the upstream's error, message and data, without the value", async () => {
    const registered = await register("echocall", "tools/call");
    expect(registered.body.discovery?.status).toBe("ok");
    const names = await createVirtualServer(stack, "zzvs", [{ upstream: "echocall", tool: "t" }]);
    await using agent = await connectHttp(stack.mcpUrl("zzvs"));
    const error = await rpcError(agent.callTool({ name: names["echocall/t"]!, arguments: {} }));
    expect(error.message).toContain("denied for key [redacted]");
    expect(error.data).toMatchObject({ upstreamData: { request: { headers: { "x-api-key": "[redacted]" } } } });
    expect(`${error.message} ${JSON.stringify(error.data)}`).not.toContain(API_KEY);
    expect(logs.filter((l) => l.includes(API_KEY))).toEqual([]);
  });

  test("echoed in a tool's result: the agent gets the result, text, structured content and keys, without the value", async () => {
    const registered = await register("echoresult", "result");
    expect(registered.body.discovery?.status).toBe("ok");
    const names = await createVirtualServer(stack, "zzresult", [{ upstream: "echoresult", tool: "t" }]);
    await using agent = await connectHttp(stack.mcpUrl("zzresult"));
    const result = (await agent.callTool({ name: names["echoresult/t"]!, arguments: {} })) as { content: { text: string }[]; structuredContent: unknown; isError: boolean };
    expect(result.isError).toBe(true);
    expect(result.content[0]!.text).toBe("called with key [redacted]");
    expect(result.structuredContent).toEqual({ request: { headers: { "x-api-key": "[redacted]", "[redacted]": "as a key" }, quoted: '"[redacted]"' } });
    expect(JSON.stringify(result)).not.toContain(API_KEY);
    // Its progress messages too.
    const progress: { message?: string }[] = [];
    const streamed = await agent.callTool({ name: names["echoresult/t"]!, arguments: {} }, undefined, { onprogress: (p) => void progress.push(p) });
    expect(progress.map((p) => p.message)).toEqual(["working with [redacted]"]);
    expect(JSON.stringify(streamed)).not.toContain(API_KEY);
  });

  test("quoted in a tool's definition: the registry never stores it, and agents never list it", async () => {
    const registered = await register("echolisting", "listing");
    expect(registered.body.discovery?.status).toBe("ok");
    const names = await createVirtualServer(stack, "zzlisting", [{ upstream: "echolisting", tool: "t" }]);
    await using agent = await connectHttp(stack.mcpUrl("zzlisting"));
    const { tools } = await agent.listTools();
    expect(tools.find((t) => t.name === names["echolisting/t"])).toMatchObject({ description: "calls the API with key [redacted]", inputSchema: { properties: { key: { default: "[redacted]" } } } });
    const history = await stack.admin.get("/v1/upstreams/echolisting/history");
    expect(history.status).toBe(200);
    for (const stored of [registered.body, history.body, (await stack.admin.get("/v1/upstreams/echolisting")).body, tools]) expect(JSON.stringify(stored)).not.toContain(API_KEY);
  });

  test("a tool whose name holds a credential value keeps its name, so it can still be called", async () => {
    const registered = await register("echonamed", "named");
    expect(registered.body.discovery?.status).toBe("ok");
    const names = await createVirtualServer(stack, "zznamed", [{ upstream: "echonamed", tool: `run-${API_KEY}` }]);
    await using agent = await connectHttp(stack.mcpUrl("zznamed"));
    const result = (await agent.callTool({ name: names[`echonamed/run-${API_KEY}`]!, arguments: {} })) as { content: { text: string }[] };
    expect(result.content[0]!.text).toBe("called by its name");
  });

  test("echoed in a question for the agent: both eras' agents are asked it without the value", async () => {
    const registered = await register("echoquestion", "question");
    expect(registered.body.discovery?.status).toBe("ok");
    const names = await createVirtualServer(stack, "zzquestion", [{ upstream: "echoquestion", tool: "t" }]);
    const asked: unknown[] = [];
    const legacy = new Client({ name: "legacy-agent", version: "1" }, { capabilities: { elicitation: { form: {} } } });
    legacy.setRequestHandler(ElicitRequestSchema, async (request) => (asked.push(request.params), { action: "accept", content: { ok: true } }));
    await legacy.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("zzquestion"))));
    const modern = new ModernClient({ name: "modern-agent", version: "1" }, { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: "2026-07-28" } } });
    modern.setRequestHandler("elicitation/create", async (request) => (asked.push(request.params), { action: "accept", content: { ok: true } }));
    await modern.connect(new ModernTransport(new URL(stack.mcpUrl("zzquestion"))));
    try {
      for (const agent of [legacy, modern]) {
        const result = await agent.callTool({ name: names["echoquestion/t"]!, arguments: {} });
        expect(JSON.stringify(result)).toContain("asked");
      }
      expect(asked).toHaveLength(2);
      for (const question of asked) {
        expect(question).toMatchObject({ message: "confirm the call made with [redacted]", requestedSchema: { properties: { ok: { description: "sent as [redacted]" } } } });
        expect(JSON.stringify(question)).not.toContain(API_KEY);
      }
    } finally {
      await legacy.close();
      await modern.close();
    }
  });

  test("quoted in its serverInfo: the connector's session line names it without the value, bounded", async () => {
    // Not recorded (the registry keeps a serverInfo of at most 16 KiB): the session is established all the same.
    await register("echoinfo", "serverInfo");
    const established = await eventually(() => {
      const lines = logs.filter((l) => l.includes("upstream session established") && l.includes("debug (x-api-key"));
      return lines.length > 0 ? lines : undefined;
    }, 10_000);
    // Before: the key in clear, on a 1,048,824-character line.
    expect(established.join("\n")).toContain("debug (x-api-key [redacted])");
    expect(Math.max(...established.map((l) => l.length))).toBeLessThan(1024);
    expect(logs.filter((l) => l.includes(API_KEY))).toEqual([]);
  });
});

describe("attack: a rotated credential still in use echoed in an upstream's JSON-RPC error", () => {
  const BEFORE = "zzrot-before-rotation-0123456789abcdef";
  const AFTER = "zzrot-after-rotation-fedcba9876543210";
  let nats: NatsServer;
  let stack: Stack;
  let upstream: Awaited<ReturnType<typeof startJsonRpcEchoingUpstream>>;
  let dir: string;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "manifold-rotation-"));
    await writeFile(join(dir, "key"), BEFORE);
    nats = await startNats();
    [stack, upstream] = await Promise.all([startStack(nats.url, { MANIFOLD_SECRETS_DIR: dir }, { logs }), startJsonRpcEchoingUpstream("tools/call")]);
    await registerUpstreams(stack, {
      name: "rotating",
      transport: { type: "streamable-http", url: upstream.url, secretHeaders: { "X-Api-Key": `file:${dir}/key` }, protocol: "2025" },
      options: { passthroughHeaders: ["X-Tenant"] },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await upstream?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the shared session's value is withheld while the session sends it, after a caller's session resolved the rotated one", async () => {
    const names = await createVirtualServer(stack, "rotvs", [{ upstream: "rotating", tool: "t" }]);
    const tool = names["rotating/t"]!;
    await using shared = await connectHttp(stack.mcpUrl("rotvs"));
    expect((await rpcError(shared.callTool({ name: tool, arguments: {} }))).message).toContain("denied for key [redacted]");
    // Rotated (a secrets agent rewrote the file); the shared session keeps sending the value it opened with.
    await writeFile(join(dir, "key"), AFTER);
    // A caller with a pass-through header of its own gets a session of its own, which resolves the file again.
    await using tenant = await connectClient(
      new StreamableHTTPClientTransport(new URL(stack.mcpUrl("rotvs")), { requestInit: { headers: { "x-manifold-upstream-headers": JSON.stringify({ rotating: { "X-Tenant": "acme" } }) } } }),
    );
    expect((await rpcError(tenant.callTool({ name: tool, arguments: {} }))).message).toContain("denied for key [redacted]");
    const again = await rpcError(shared.callTool({ name: tool, arguments: {} }));
    expect(`${again.message} ${JSON.stringify(again.data)}`).not.toContain(BEFORE);
    expect(again.message).toContain("denied for key [redacted]");
    expect(logs.filter((l) => l.includes(BEFORE) || l.includes(AFTER))).toEqual([]);
  });
});

describe("attack: a credential echoed as its upstream parsed it, in an upstream's JSON-RPC error", () => {
  const SESSION = "zzcookie-session-0123456789abcdef";
  const PASSWORD = "zzbasic-password-0123456789";
  /** A server that parsed its credential quotes a part: one cookie's value, or a Basic pair decoded. */
  const cases = [
    { at: "cookie", header: "Cookie", value: `session=${SESSION}; theme=dark`, secret: SESSION },
    { at: "basic", header: "Authorization", value: `Basic ${Buffer.from(`svc-reader:${PASSWORD}`).toString("base64")}`, secret: PASSWORD },
  ] as const;
  let nats: NatsServer;
  let stack: Stack;
  const upstreams: Awaited<ReturnType<typeof startJsonRpcEchoingUpstream>>[] = [];
  const logs: string[] = [];

  beforeAll(async () => {
    nats = await startNats();
    stack = await startStack(nats.url, {}, { logs, secretsEnv: Object.fromEntries(cases.map((c) => [`MANIFOLD_SECRET_ZZ_${c.at.toUpperCase()}`, c.value])) });
    for (const c of cases) {
      const upstream = await startJsonRpcEchoingUpstream(c.at);
      upstreams.push(upstream);
      await registerUpstreams(stack, { name: c.at, transport: { type: "streamable-http", url: upstream.url, secretHeaders: { [c.header]: `env:MANIFOLD_SECRET_ZZ_${c.at.toUpperCase()}` }, protocol: "2025" } });
    }
  });
  afterAll(async () => {
    await stack?.close();
    for (const upstream of upstreams) await upstream.close();
    await nats?.stop();
  });

  test.each(cases)("$at: the agent hears the error without the part it quotes", async ({ at, secret }) => {
    const names = await createVirtualServer(stack, `${at}vs`, [{ upstream: at, tool: "t" }]);
    await using agent = await connectHttp(stack.mcpUrl(`${at}vs`));
    const error = await rpcError(agent.callTool({ name: names[`${at}/t`]!, arguments: {} }));
    expect(error.message).toContain("denied for key");
    expect(`${error.message} ${JSON.stringify(error.data)}`).not.toContain(secret);
    expect(logs.filter((l) => l.includes(secret))).toEqual([]);
  });
});
