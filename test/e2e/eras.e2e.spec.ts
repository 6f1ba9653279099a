import type { NatsServer } from "@manifold/nats-server";
import { freePort } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { execFile, type ChildProcess } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FAIL_CODE, serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { registerUpstreams, rpcError } from "../helpers/catalog.js";
import { connectHttp, eventually } from "../helpers/mcp.js";
import { ADMIN_TOKEN, startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, spawnModernUpstream, type SpawnedUpstream } from "../helpers/upstreams.js";

const MODERN_FIXTURE = new URL("../fixtures/modern-upstream.mjs", import.meta.url).pathname;
const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;
const execFileAsync = promisify(execFile);
const MODERN = "2026-07-28";
const LEGACY = "2025-11-25";

/** What the suite asks of an agent, whichever SDK generation and protocol era it speaks. */
interface Agent {
  listTools(): Promise<{ tools: { name: string; inputSchema: { properties?: unknown } }[] }>;
  callTool(params: { name: string; arguments: Record<string, unknown> }, options?: { onprogress?: (p: { progress: number }) => void; signal?: AbortSignal }): Promise<unknown>;
  /** Starts hearing `notifications/tools/list_changed` (on the session, or on a subscriptions/listen stream). */
  onToolsChanged(handler: () => void): Promise<void>;
  close(): Promise<void>;
}
interface AgentKind {
  name: string;
  connect(url: string): Promise<Agent>;
}
const legacyAgent: AgentKind = {
  name: "1.32.2 client (2025-11-25)",
  connect: async (url) => {
    const client = await connectHttp(url);
    return {
      listTools: () => client.listTools(),
      callTool: (params, options) => client.callTool(params, undefined, options),
      onToolsChanged: async (handler) => client.setNotificationHandler(ToolListChangedNotificationSchema, handler),
      close: () => client.close(),
    };
  },
};
const modernAgent: AgentKind = {
  name: "2.4.0 client pinned to 2026-07-28",
  connect: async (url) => {
    const client = new ModernClient({ name: "eras-agent", version: "1.0.0" }, { versionNegotiation: { mode: { pin: MODERN } } });
    await client.connect(new ModernTransport(new URL(url)));
    return {
      listTools: () => client.listTools(),
      callTool: (params, options) => client.callTool(params, options),
      onToolsChanged: async (handler) => {
        client.setNotificationHandler("notifications/tools/list_changed", handler);
        await client.listen({ toolsListChanged: true });
      },
      close: () => client.close(),
    };
  },
};

type Served = Awaited<ReturnType<typeof serveModernHttp>>;
const text = (result: unknown) => ((result as { content: { text: string }[] }).content[0]!.text);

const stop = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
};

describe.each([legacyAgent, modernAgent])("one virtual server spanning a 2025-era and a 2026-07-28 upstream, agent: $name", (kind) => {
  let nats: NatsServer;
  let stack: Stack;
  let everything: SpawnedUpstream;
  let modern: Served;
  let restartable: ChildProcess;
  let restartablePort: number;
  let agent: Agent;
  let names: Record<string, string>;
  let listChanges = 0;

  beforeAll(async () => {
    nats = await startNats();
    restartablePort = await freePort();
    [stack, everything, modern, restartable] = await Promise.all([startStack(nats.url), spawnEverything("streamableHttp"), serveModernHttp(), spawnModernUpstream(restartablePort)]);
    await registerUpstreams(
      stack,
      { name: "everything", transport: { type: "streamable-http", url: everything.url } },
      { name: "modern", transport: { type: "streamable-http", url: modern.url } },
      { name: "modern-stdio", transport: { type: "stdio", command: process.execPath, args: [MODERN_FIXTURE, "stdio"] } },
      { name: "modern-restart", transport: { type: "streamable-http", url: `http://127.0.0.1:${restartablePort}/mcp` } },
    );
    const res = await stack.admin.post("/v1/virtual-servers", {
      name: "eras",
      driftPolicy: "auto-compatible",
      tools: [
        { upstream: "everything", tool: "echo" },
        { upstream: "everything", tool: "trigger-long-running-operation" },
        { upstream: "modern", tool: "echo" },
        { upstream: "modern", tool: "progress" },
        { upstream: "modern", tool: "slow" },
        { upstream: "modern", tool: "grow" },
        { upstream: "modern", tool: "fail" },
        { upstream: "modern-stdio", tool: "echo" },
        { upstream: "modern-stdio", tool: "slow" },
        { upstream: "modern-stdio", tool: "cancelled" },
        { upstream: "modern-restart", tool: "pid" },
        { upstream: "modern", tool: "region" },
      ],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    names = Object.fromEntries(res.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
    agent = await kind.connect(stack.mcpUrl("eras"));
    await agent.onToolsChanged(() => void listChanges++);
  });

  afterAll(async () => {
    await agent?.close();
    await stack?.close();
    await Promise.all([everything?.stop(), modern?.close(), restartable && stop(restartable)]);
    await nats?.stop();
  });

  const call = (key: string, args: Record<string, unknown> = {}, options?: Parameters<Agent["callTool"]>[1]) => agent.callTool({ name: names[key]!, arguments: args }, options);

  test("the registry and the CLI show each upstream's era", async () => {
    const era = async (name: string) => eventually(async () => (await stack.admin.get(`/v1/upstreams/${name}`)).body.protocolVersion as string | undefined);
    expect(await era("everything")).toBe(LEGACY);
    expect(await era("modern")).toBe(MODERN);
    expect(await era("modern-stdio")).toBe(MODERN);
    const health = (await stack.admin.get("/v1/upstreams/modern")).body.health;
    expect(health.replicas[0]).toMatchObject({ status: "up", protocolVersion: MODERN });
    const env = { ...process.env, MANIFOLD_REGISTRY_URL: stack.admin.baseUrl, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN };
    const { stdout } = await execFileAsync(process.execPath, [CLI, "get", "upstream", "modern"], { env });
    expect(JSON.parse(stdout).protocolVersion).toBe(MODERN);
  });

  test("lists and calls both eras' tools through one virtual server", async () => {
    const listed = (await agent.listTools()).tools.map((t) => t.name);
    expect(listed).toEqual(expect.arrayContaining([names["everything/echo"], names["modern/echo"], names["modern-stdio/echo"]]));
    expect(text(await call("everything/echo", { message: "old" }))).toBe("Echo: old");
    expect(text(await call("modern/echo", { message: "new" }))).toBe("echo: new");
    expect(text(await call("modern-stdio/echo", { message: "piped" }))).toBe("echo: piped");
  });

  test("a modern upstream's result reaches the agent without its hop, on every path: no resultType or upstream serverInfo for a 2025 agent, the gateway's serverInfo for a 2026-07-28 one", async () => {
    // Before: the direct path passed both on (and every such call was re-parsed at the gateway to
    // merge them), the SDK client's path the upstream's serverInfo, which the 2.x SDK lane keeps.
    const paths: [string, Parameters<Agent["callTool"]>[1]][] = [
      ["modern/echo", undefined], // the connector's direct caller; the gateway's fast path
      ["modern-stdio/echo", undefined], // the connector's SDK client
      ["modern/echo", { onprogress: () => undefined }], // the gateway's SDK lane (a progress token)
      ["modern-stdio/echo", { onprogress: () => undefined }], // both SDKs
    ];
    for (const [key, options] of paths) {
      const result = (await call(key, { message: "whose" }, options)) as Record<string, unknown>;
      expect(text(result as Parameters<typeof text>[0]), key).toBe("echo: whose");
      const serverInfo = (result._meta as Record<string, unknown> | undefined)?.["io.modelcontextprotocol/serverInfo"];
      if (kind === modernAgent) expect(serverInfo, key).toEqual({ name: "manifold-eras", version: expect.any(String) });
      else {
        expect(result, key).not.toHaveProperty("resultType");
        expect(serverInfo, key).toBeUndefined();
      }
    }
  });

  test("progress reaches the agent from either era", async () => {
    const modernSteps: number[] = [];
    const result = await call("modern/progress", { steps: 3 }, { onprogress: (p) => void modernSteps.push(p.progress) });
    expect(text(result)).toBe("progressed 3 steps");
    expect(modernSteps).toEqual([1, 2, 3]);
    const legacySteps: number[] = [];
    await call("everything/trigger-long-running-operation", { duration: 0.3, steps: 3 }, { onprogress: (p) => void legacySteps.push(p.progress) });
    expect(legacySteps.length).toBeGreaterThanOrEqual(1);
  });

  test("a cancelled call stops on a modern upstream, over Streamable HTTP (stream closed) and stdio (notifications/cancelled)", async () => {
    for (const key of ["modern/slow", "modern-stdio/slow"]) {
      const aborter = new AbortController();
      const pending = call(key, { ms: 30_000 }, { signal: aborter.signal });
      await new Promise((r) => setTimeout(r, 300));
      aborter.abort("changed my mind");
      await expect(pending).rejects.toThrow();
    }
    await eventually(() => (modern.state.cancelled === 1 ? true : undefined), 5_000, 50);
    await eventually(async () => (text(await call("modern-stdio/cancelled")) === "1" ? true : undefined), 5_000, 100);
  });

  test("parameters a modern upstream marks with x-mcp-header are mirrored into Mcp-Param-* headers on the direct path, Base64 where needed", async () => {
    const headers = async (args: Record<string, unknown>) => JSON.parse(text(await call("modern/region", args))) as Record<string, string | null>;
    expect(await headers({ region: "us-west1", priority: 7, query: "SELECT 1" })).toEqual({ region: "us-west1", priority: "7" });
    // Non-ASCII and a value that looks like the sentinel itself are carried Base64-encoded; an absent parameter sends no header.
    expect(await headers({ region: "Hello, 世界" })).toEqual({ region: "=?base64?SGVsbG8sIOS4lueVjA==?=", priority: null });
    expect(await headers({ region: "=?base64?literal?=", priority: -3 })).toEqual({ region: "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?=", priority: "-3" });
  });

  test("a modern upstream's JSON-RPC error reaches the agent with its code", async () => {
    const error = await rpcError(call("modern/fail"));
    expect(error.data).toMatchObject({ code: "upstream_error", upstreamCode: FAIL_CODE });
    expect(error.message).toContain("the fixture fails on request");
  });

  test("a modern upstream's list change is followed (subscriptions/listen) and reaches the agent", async () => {
    const before = listChanges;
    expect(text(await call("modern/grow", { property: "loud" }))).toContain("loud");
    // Rediscovery on schedule is minutes away: only the listen stream explains a prompt report.
    await eventually(() => (listChanges > before ? true : undefined), 10_000, 50);
    const echo = await eventually(async () => {
      const tool = (await agent.listTools()).tools.find((t) => t.name === names["modern/echo"]);
      return (tool?.inputSchema.properties as Record<string, unknown> | undefined)?.loud ? tool : undefined;
    }, 10_000, 100);
    expect(echo.inputSchema.properties).toHaveProperty("loud");
  });

  test("a modern upstream restarted under calls recovers: there is no session to lose", async () => {
    const firstPid = text(await call("modern-restart/pid"));
    await stop(restartable);
    const during = await call("modern-restart/pid").then(() => "answered", (error: { data?: { code?: string } }) => error.data?.code);
    expect(during).toBe("upstream_unavailable");
    restartable = await spawnModernUpstream(restartablePort);
    const secondPid = await eventually(async () => text(await call("modern-restart/pid")), 10_000, 100);
    expect(secondPid).not.toBe(firstPid);
    // Back in service without a reconnection: health is up again.
    await eventually(async () => ((await stack.admin.get("/v1/upstreams/modern-restart")).body.health.status === "up" ? true : undefined), 10_000, 100);
  });
});
