import type { NatsServer } from "@manifold/nats-server";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { z } from "zod";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, MODERN, modernRequest, TASKS } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio, spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "t".repeat(48) };
const ANY = z.looseObject({});
type Task = { taskId: string; status: string; result?: { content?: { text?: string }[] }; error?: unknown; resultType?: string };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A caller's JSON-RPC refusal, as the agent sees it. */
const refusal = (call: Promise<unknown>) =>
  call.then(
    (value) => {
      throw new Error(`expected a refusal, got ${JSON.stringify(value)}`);
    },
    (error: { code?: number; message: string }) => ({ code: error.code, message: error.message }),
  );

/**
 * server-everything's `simulate-research-query` requires task augmentation (2025-11-25 tasks): it is
 * called as a task through a virtual server by a 2025 agent and by a 2026-07-28 agent (tasks
 * extension), polled to completion and cancelled; another consumer holding the task id gets
 * the answer a made-up id gets.
 */
describe("tasks through a virtual server, bound to the caller", () => {
  let nats: NatsServer;
  let stack: Stack;
  let http: SpawnedUpstream;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};

  const legacyAgent = async (consumer: string, capabilities: Record<string, unknown> = {}) => {
    const client = new Client({ name: `legacy-${consumer}`, version: "1.0.0" }, { capabilities });
    await client.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("research")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return client;
  };
  const modernAgent = async (consumer: string) => {
    const client = new ModernClient({ name: `modern-${consumer}`, version: "1.0.0" }, { capabilities: { extensions: { [TASKS]: {} } }, versionNegotiation: { mode: { pin: MODERN } } } as never);
    await client.connect(new ModernTransport(new URL(stack.mcpUrl("research")), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return client;
  };
  /** A 2026-07-28 tools/call as raw JSON-RPC (the 2.4.0 client refuses `resultType: "task"` answers). */
  const modernCall = (consumer: string, name: string, args: Record<string, unknown>, declare = true) =>
    modernRequest(stack.mcpUrl("research"), keys[consumer]!, "tools/call", { name, arguments: args }, declare ? declaring() : {}) as Promise<{ result?: Task; error?: { code: number; message: string } }>;

  beforeAll(async () => {
    nats = await startNats();
    [stack, http] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), spawnEverything("streamableHttp")]);
    await registerUpstreams(stack, { name: "stdio", transport: everythingStdio() }, { name: "http", transport: { type: "streamable-http", url: http.url } });
    names = await createVirtualServer(stack, "research", [
      { upstream: "stdio", tool: "simulate-research-query" },
      { upstream: "http", tool: "simulate-research-query" },
      { upstream: "stdio", tool: "echo" },
    ]);
    Object.assign(keys, await grantedConsumers(stack, "research", ["alice", "mallory"]));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await http?.stop();
    await nats?.stop();
  });

  describe("a 1.32.2 client (2025-11-25 tasks)", () => {
    test("the pin keeps taskSupport; a task is created, polled to completion and its result read, over stdio and Streamable HTTP", async () => {
      const alice = await legacyAgent("alice");
      try {
        expect(alice.getServerCapabilities()?.tasks).toEqual({ list: {}, cancel: {}, requests: { tools: { call: {} } } });
        const listed = (await alice.listTools()).tools.find((t) => t.name === names["stdio/simulate-research-query"]);
        expect(listed?.execution).toEqual({ taskSupport: "required" });
        for (const upstream of ["stdio", "http"]) {
          const created = await alice.request({ method: "tools/call", params: { name: names[`${upstream}/simulate-research-query`]!, arguments: { topic: "tides" }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
          const handle = created.task.taskId;
          expect(handle, upstream).toMatch(/^mt2\./);
          let task = await alice.experimental.tasks.getTask(handle);
          while (task.status === "working") {
            await sleep(250);
            task = await alice.experimental.tasks.getTask(handle);
          }
          expect(task.status, upstream).toBe("completed");
          expect(task.taskId).toBe(handle);
          const result = await alice.experimental.tasks.getTaskResult(handle, CallToolResultSchema);
          expect(JSON.stringify(result.content), upstream).toContain("tides");
          expect((await alice.experimental.tasks.listTasks()).tasks.map((t) => t.taskId)).toContain(handle);
        }
      } finally {
        await alice.close();
      }
    }, 60_000);

    // review finding: one tasks/list, one counted call, asked the upstream about every task the session created (up to 100 at once).
    test("tasks/list is paged, ten tasks a page, newest first: each listed task is a request upstream", async () => {
      const alice = await legacyAgent("alice");
      try {
        const handles: string[] = [];
        for (let i = 0; i < 12; i++) {
          const created = await alice.request({ method: "tools/call", params: { name: names["http/simulate-research-query"]!, arguments: { topic: `t${i}` }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
          handles.push(created.task.taskId);
        }
        const first = await alice.experimental.tasks.listTasks();
        expect(first.tasks.map((t) => t.taskId)).toEqual(handles.slice(2).reverse());
        expect(first.nextCursor).toBe("10");
        const second = await alice.experimental.tasks.listTasks(first.nextCursor);
        expect(second.tasks.map((t) => t.taskId)).toEqual(handles.slice(0, 2).reverse());
        expect(second.nextCursor).toBeUndefined();
        await expect(alice.experimental.tasks.listTasks("nonsense")).rejects.toThrow(/not a cursor/);
      } finally {
        await alice.close();
      }
    }, 60_000);

    test("a task's question (server-everything's ambiguous research) reaches the agent on its tasks/result stream, and the answer steers the task", async () => {
      const alice = await legacyAgent("alice", { elicitation: { form: {} } });
      const asked: string[] = [];
      const related: unknown[] = [];
      alice.setRequestHandler(ElicitRequestSchema, async (request) => {
        asked.push(request.params.message);
        related.push(request.params._meta?.["io.modelcontextprotocol/related-task"]);
        return { action: "accept", content: { interpretation: "snake" } };
      });
      try {
        for (const upstream of ["stdio", "http"]) {
          const created = await alice.request({ method: "tools/call", params: { name: names[`${upstream}/simulate-research-query`]!, arguments: { topic: "python", ambiguous: true }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
          const handle = created.task.taskId;
          let task = await alice.experimental.tasks.getTask(handle);
          while (task.status === "working") {
            await sleep(250);
            task = await alice.experimental.tasks.getTask(handle);
          }
          expect(task.status, upstream).toBe("input_required");
          // tasks/result carries the question, and waits for the task to end.
          const result = await alice.experimental.tasks.getTaskResult(handle, CallToolResultSchema);
          expect(JSON.stringify(result.content), upstream).toContain("Clarification**: snake");
          // The question names its task by the agent's handle, never by the upstream's own id.
          expect(related.at(-1), upstream).toEqual({ taskId: handle });
          expect((await alice.experimental.tasks.getTask(handle)).status, upstream).toBe("completed");
        }
        expect(asked).toHaveLength(2);
        expect(asked[0]).toContain('"python" could have multiple interpretations');
      } finally {
        await alice.close();
      }
    }, 60_000);

    test("cancel; another consumer gets, cancels, reads or lists nothing of it: the answer a made-up id gets", async () => {
      const [alice, mallory] = await Promise.all([legacyAgent("alice"), legacyAgent("mallory")]);
      try {
        const created = await alice.request({ method: "tools/call", params: { name: names["stdio/simulate-research-query"]!, arguments: { topic: "eels" }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
        const handle = created.task.taskId;
        const madeUp = await refusal(mallory.experimental.tasks.getTask("mt2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        expect(madeUp.code).toBe(-32602);
        expect(await refusal(mallory.experimental.tasks.getTask(handle))).toEqual(madeUp);
        expect(await refusal(mallory.experimental.tasks.cancelTask(handle))).toEqual(madeUp);
        expect(await refusal(mallory.experimental.tasks.getTaskResult(handle, CallToolResultSchema))).toEqual(madeUp);
        expect((await mallory.experimental.tasks.listTasks()).tasks).toEqual([]);

        const cancelled = await alice.experimental.tasks.cancelTask(handle);
        expect(cancelled.status).toBe("cancelled");
        expect((await alice.experimental.tasks.getTask(handle)).status).toBe("cancelled");
      } finally {
        await Promise.all([alice.close(), mallory.close()]);
      }
    }, 60_000);
  });

  describe("a 2.4.0 client pinned to 2026-07-28 (the tasks extension)", () => {
    test("discover declares the extension; a declaring agent gets a task, polls tasks/get until the result is inlined; a plain tool stays synchronous", async () => {
      const alice = await modernAgent("alice");
      try {
        expect(alice.getServerCapabilities()?.extensions).toEqual({ [TASKS]: {} });
        const created = await modernCall("alice", names["stdio/simulate-research-query"]!, { topic: "moons" });
        expect(created.result?.resultType, JSON.stringify(created)).toBe("task");
        // The extension's Task: ttlMs (null: unlimited) and pollIntervalMs instead of 2025's ttl and pollInterval.
        expect(Object.keys(created.result!)).toEqual(expect.arrayContaining(["taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs"]));
        expect(Object.keys(created.result!)).not.toContain("ttl");
        const handle = created.result!.taskId;
        expect(handle).toMatch(/^mt2\./);
        let task = (await alice.request({ method: "tasks/get", params: { taskId: handle } }, ANY)) as unknown as Task;
        while (task.status === "working") {
          await sleep(250);
          task = (await alice.request({ method: "tasks/get", params: { taskId: handle } }, ANY)) as unknown as Task;
        }
        expect(task.status, JSON.stringify(task)).toBe("completed");
        expect(task.taskId).toBe(handle);
        expect(JSON.stringify(task.result?.content)).toContain("moons");
        const echoed = await modernCall("alice", names["stdio/echo"]!, { message: "plain" });
        expect(echoed.result?.resultType).toBe("complete");
        // A request without the extension cannot take the task the tool answers with (SEP-2663).
        const undeclared = await modernCall("alice", names["stdio/simulate-research-query"]!, { topic: "moons" }, false);
        expect(undeclared.error?.code, JSON.stringify(undeclared)).toBe(-32021);
        expect((undeclared.error as { data?: unknown }).data).toMatchObject({ requiredCapabilities: { extensions: { [TASKS]: {} } } });
      } finally {
        await alice.close();
      }
    }, 60_000);

    test("cancel; another consumer's tasks/get, tasks/update and tasks/cancel get the made-up id's answer", async () => {
      const [alice, mallory] = await Promise.all([modernAgent("alice"), modernAgent("mallory")]);
      try {
        const created = await modernCall("alice", names["http/simulate-research-query"]!, { topic: "comets" });
        const handle = created.result!.taskId;
        const madeUp = await refusal(mallory.request({ method: "tasks/get", params: { taskId: "mt2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" } }, ANY));
        expect(madeUp.code).toBe(-32602);
        for (const method of ["tasks/get", "tasks/update", "tasks/cancel"]) {
          expect(await refusal(mallory.request({ method, params: { taskId: handle, inputResponses: {} } } as never, ANY)), method).toEqual(madeUp);
        }
        await alice.request({ method: "tasks/cancel", params: { taskId: handle } }, ANY);
        const task = (await alice.request({ method: "tasks/get", params: { taskId: handle } }, ANY)) as unknown as Task;
        expect(task.status).toBe("cancelled");
      } finally {
        await Promise.all([alice.close(), mallory.close()]);
      }
    }, 60_000);
  });
});
