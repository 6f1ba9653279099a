import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio } from "../helpers/upstreams.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "p".repeat(48) };
const RELATED_TASK = "io.modelcontextprotocol/related-task";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The 2025-11-25 tasks spec's protocol errors and `tasks/result` metadata, as a 2025 agent (SDK
 * 1.32.2) and a 2026-07-28 agent (raw requests) see them through a virtual server, over a 2025
 * upstream (server-everything, stdio) and a 2026-07-28 one (the tasks extension fixture):
 * - "Receivers MUST reject cancellation requests for tasks already in a terminal status … -32602",
 *   and an id the upstream no longer knows is -32602 (before: -32012 `upstream_error`, the
 *   upstream's -32602 only in `data.upstreamCode`);
 * - "The tasks/result operation MUST include [related-task] metadata in its response" (before:
 *   missing for a 2026-07-28 upstream's task).
 */
describe("task protocol errors and tasks/result metadata (2025-11-25 tasks spec)", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernTasksHttp>>;
  let names: Record<string, string>;
  let key: string;
  let url: string;

  const legacyAgent = async () => {
    const client = new Client({ name: "legacy-alice", version: "1.0.0" }, { capabilities: {} });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${key}` } } }));
    return client;
  };
  /** A task created by a 1.32.2 agent, polled until it ended. */
  const endedTask = async (agent: Client, tool: string, args: Record<string, unknown>) => {
    const created = await agent.request({ method: "tools/call", params: { name: names[tool]!, arguments: args, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
    const handle = created.task.taskId;
    for (let i = 0; i < 200 && (await agent.experimental.tasks.getTask(handle)).status === "working"; i++) await sleep(100);
    expect((await agent.experimental.tasks.getTask(handle)).status).toBe("completed");
    return handle;
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernTasksHttp()]);
    await registerUpstreams(stack, { name: "everything", transport: everythingStdio() }, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    names = await createVirtualServer(stack, "jobs", [
      { upstream: "everything", tool: "simulate-research-query" },
      { upstream: "modern", tool: "research" },
    ]);
    url = stack.mcpUrl("jobs");
    key = (await grantedConsumers(stack, "jobs", ["alice"])).alice!;
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  test("tasks/cancel of a completed task (2025 upstream) is -32602 for both eras' agents", async () => {
    const alice = await legacyAgent();
    try {
      const handle = await endedTask(alice, "everything/simulate-research-query", { topic: "tides" });
      const legacy = await rpcError(alice.experimental.tasks.cancelTask(handle));
      const modernAnswer = await modernRequest(url, key, "tasks/cancel", { taskId: handle });
      console.log(`tasks/cancel of a completed task: 2025 agent ${JSON.stringify({ code: legacy.code, data: legacy.data })}; 2026-07-28 agent ${JSON.stringify(modernAnswer.error)}`);
      expect(legacy.code).toBe(-32602);
      expect(legacy.data).toMatchObject({ code: "invalid_task_request", upstreamCode: -32602 });
      expect(modernAnswer.error, JSON.stringify(modernAnswer)).toMatchObject({ code: -32602, data: { code: "invalid_task_request", upstreamCode: -32602 } });
    } finally {
      await alice.close();
    }
  }, 60_000);

  test("a 2026-07-28 upstream's task: tasks/result carries related-task naming the caller's handle", async () => {
    const alice = await legacyAgent();
    try {
      const handle = await endedTask(alice, "modern/research", { topic: "moons" });
      const result = await alice.experimental.tasks.getTaskResult(handle, CallToolResultSchema);
      console.log(`tasks/result of a 2026-07-28 upstream's task: _meta ${JSON.stringify(result._meta)}`);
      expect(result.content).toEqual([{ type: "text", text: "research on moons" }]);
      expect(result._meta?.[RELATED_TASK]).toEqual({ taskId: handle });
    } finally {
      await alice.close();
    }
  }, 60_000);

  test("a task the 2026-07-28 upstream forgot: tasks/get is -32602 for both eras' agents, the upstream's message kept", async () => {
    const alice = await legacyAgent();
    try {
      const handle = await endedTask(alice, "modern/research", { topic: "tides" });
      modern.state.tasks.clear();
      const legacy = await rpcError(alice.experimental.tasks.getTask(handle));
      const modernAnswer = await modernRequest(url, key, "tasks/get", { taskId: handle });
      console.log(`tasks/get of a task the upstream forgot: 2025 agent ${JSON.stringify({ code: legacy.code, message: legacy.message, data: legacy.data })}; 2026-07-28 agent ${JSON.stringify(modernAnswer.error)}`);
      expect(legacy.code).toBe(-32602);
      expect(legacy.data).toMatchObject({ code: "invalid_task_request", upstreamCode: -32602 });
      expect(legacy.message).toContain("Task not found");
      expect(modernAnswer.error, JSON.stringify(modernAnswer)).toMatchObject({ code: -32602, data: { code: "invalid_task_request", upstreamCode: -32602 } });
    } finally {
      await alice.close();
    }
  }, 60_000);
});
