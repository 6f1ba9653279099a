import type { NatsServer } from "@manifold/nats-server";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
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
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
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
