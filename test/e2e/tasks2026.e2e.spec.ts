import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema, ElicitRequestSchema, TaskStatusNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { declaring, MODERN, modernRequest, TASKS, type ModernAnswer } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { everythingStdio, spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "u".repeat(48) };
const FORM = { elicitation: { form: {} } };
const MADE_UP = "mt2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const STDIO_FIXTURE = new URL("../fixtures/stdio-upstream.mjs", import.meta.url).pathname;
const TASKS_FIXTURE = new URL("../fixtures/modern-tasks-upstream.mjs", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Tasks in both eras over both kinds of upstream: a 2026-07-28 upstream with the tasks extension
 * (`modern-tasks-upstream.mjs`, Streamable HTTP) and server-everything (2025-11-25 tasks, stdio),
 * through one virtual server, for a 1.32.2 agent (2025-11-25 tasks) and raw 2026-07-28 requests
 * (the extension): task creation, polling, input rounds (`inputRequests` / `tasks/update` and the
 * 2025 `tasks/result` stream), cancellation, failure, status notifications, and the attacks: a
 * forged handle, another caller's handle, answers to another caller's round. Run with the fast
 * path on and off: the answers are the same.
 */
describe.each(["on", "off"] as const)("tasks of 2026-07-28 upstreams, input rounds in tasks, task notifications (fast path %s)", (fastPath) => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernTasksHttp>>;
  let everythingHttp: SpawnedUpstream;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};
  let url: string;

  const legacyAgent = async (consumer: string, capabilities: Record<string, unknown> = {}) => {
    const client = new Client({ name: `legacy-${consumer}`, version: "1.0.0" }, { capabilities });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return client;
  };
  const modernAs = (consumer: string, method: string, params: Record<string, unknown>, capabilities?: Record<string, unknown>) => modernRequest(url, keys[consumer]!, method, params, capabilities);
  /** Polls tasks/get (2026-07-28) until the task leaves `working`. */
  const settled = async (consumer: string, taskId: string, capabilities?: Record<string, unknown>): Promise<ModernAnswer> => {
    for (let i = 0; i < 200; i++) {
      const got = await modernAs(consumer, "tasks/get", { taskId }, capabilities);
      if (got.result?.status !== "working") return got;
      await sleep(100);
    }
    throw new Error("the task never left working");
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern, everythingHttp] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_FAST_PATH: fastPath, ...KEY_ENV }), serveModernTasksHttp(), spawnEverything("streamableHttp")]);
    await registerUpstreams(
      stack,
      { name: "modern", transport: { type: "streamable-http", url: modern.url } },
      { name: "everything", transport: everythingStdio() },
      { name: "everything-http", transport: { type: "streamable-http", url: everythingHttp.url } },
      { name: "plain", transport: { type: "stdio", command: process.execPath, args: [STDIO_FIXTURE], env: { OPTIONAL_TASKS: "1" } } },
      { name: "modern-stdio", transport: { type: "stdio", command: process.execPath, args: [TASKS_FIXTURE], protocol: "2026-07-28" } },
    );
    names = await createVirtualServer(stack, "jobs", [
      { upstream: "modern", tool: "research" },
      { upstream: "modern", tool: "echo" },
      { upstream: "everything", tool: "simulate-research-query" },
      { upstream: "everything-http", tool: "simulate-research-query" },
      { upstream: "plain", tool: "maybe-task" },
      { upstream: "modern-stdio", tool: "research" },
      { upstream: "modern-stdio", tool: "echo" },
    ]);
    url = stack.mcpUrl("jobs");
    Object.assign(keys, await grantedConsumers(stack, "jobs", ["alice", "mallory"]));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await everythingHttp?.stop();
    await nats?.stop();
  });

  describe("a 2026-07-28 upstream's tasks", () => {
    test("2026-07-28 agent: a declaring call gets a task (the upstream decides), polled until the result is inlined; a plain tool answers at once; without the extension, the upstream's -32021", async () => {
      const created = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "tides" } });
      expect(created.result?.resultType, JSON.stringify(created)).toBe("task");
      const handle = created.result!.taskId as string;
      expect(handle).toMatch(/^mt2\./);
      expect(created.result).toMatchObject({ status: "working", ttlMs: 60_000, pollIntervalMs: 100, statusMessage: "researching tides" });
      const done = await settled("alice", handle);
      expect(done.result, JSON.stringify(done)).toMatchObject({ resultType: "complete", taskId: handle, status: "completed", result: { content: [{ type: "text", text: "research on tides" }] } });

      const echoed = await modernAs("alice", "tools/call", { name: names["modern/echo"], arguments: { message: "now" } });
      expect(echoed.result).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "echo: now" }] });
      const undeclared = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "tides" } }, {});
      expect(undeclared.status).toBe(400);
      expect(undeclared.error, JSON.stringify(undeclared)).toMatchObject({ code: -32021, data: { requiredCapabilities: { extensions: { [TASKS]: {} } } } });
    }, 60_000);

    test("a task's result is judged as a call's, both eras: members no revision names in its blocks left out, a value the SDKs refuse upstream_error / invalid_result", async () => {
      const strangers = [{ type: "text", text: "ok", extra: 1, annotations: { priority: 1, tone: "loud" } }];
      const kept = [{ type: "text", text: "ok", annotations: { priority: 1 } }];
      const robot = [{ type: "text", text: "ok", annotations: { audience: ["robot"] } }];
      const modernTask = async (blocks: unknown[]) => {
        const created = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "shapes", ms: 10, blocks } });
        return settled("alice", created.result!.taskId as string);
      };
      expect((await modernTask(strangers)).result).toMatchObject({ status: "completed", result: { content: kept } });
      expect((await modernTask(robot)).error).toMatchObject({ data: { code: "upstream_error", reason: "invalid_result" } });

      const alice = await legacyAgent("alice");
      try {
        const legacyTask = async (blocks: unknown[]) => {
          const created = await alice.request({ method: "tools/call", params: { name: names["modern/research"]!, arguments: { topic: "shapes", ms: 10, blocks }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
          return alice.request({ method: "tasks/result", params: { taskId: created.task.taskId } }, CallToolResultSchema.passthrough());
        };
        expect((await legacyTask(strangers)).content).toEqual(kept);
        await expect(legacyTask(robot)).rejects.toMatchObject({ data: { code: "upstream_error", reason: "invalid_result" } });
      } finally {
        await alice.close();
      }
    }, 60_000);

    test("2026-07-28 agent: the task's question is in tasks/get, the answer goes upstream with tasks/update; an agent that may not be asked sees none and answers nothing", async () => {
      const created = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "python", ask: true } }, declaring(FORM));
      const handle = created.result!.taskId as string;
      const asking = await settled("alice", handle, declaring(FORM));
      expect(asking.result?.status, JSON.stringify(asking)).toBe("input_required");
      const [key, question] = Object.entries(asking.result!.inputRequests as Record<string, { method: string; params: { message: string } }>)[0]!;
      expect(question).toMatchObject({ method: "elicitation/create", params: { message: "Which python?" } });

      // Without elicitation declared, the same task shows no question, and an answer from there goes nowhere.
      const blind = await modernAs("alice", "tasks/get", { taskId: handle }, declaring());
      expect(blind.result).toMatchObject({ status: "input_required", inputRequests: {} });
      expect((await modernAs("alice", "tasks/update", { taskId: handle, inputResponses: { [key]: { action: "accept", content: { meaning: "blind" } } } }, declaring())).result).toMatchObject({ resultType: "complete" });
      expect(modern.state.updates.filter((u) => u.keys.includes(key))).toEqual([]);

      const ack = await modernAs("alice", "tasks/update", { taskId: handle, inputResponses: { [key]: { action: "accept", content: { meaning: "snake" } }, unknown: { action: "accept" } } }, declaring(FORM));
      expect(ack.result, JSON.stringify(ack)).toMatchObject({ resultType: "complete" });
      // Only the open question's answer reached the upstream.
      expect(modern.state.updates.filter((u) => u.keys.includes(key))).toEqual([{ taskId: expect.any(String), keys: [key] }]);
      const done = await settled("alice", handle, declaring(FORM));
      expect(done.result).toMatchObject({ status: "completed", result: { content: [{ text: "research on python: snake" }] } });
    }, 60_000);

    test("2026-07-28 agent: a failed task carries its JSON-RPC error; a cancelled one is cancelled", async () => {
      const failing = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "x", fail: true } });
      const failed = await settled("alice", failing.result!.taskId);
      // The error a call of the tool gets through Manifold: the upstream's, with its code kept.
      expect(failed.result).toMatchObject({ status: "failed", error: { code: -31012, data: { upstreamCode: -32010 } } });
      expect(failed.result!.error.message).toContain("the research failed");

      const slow = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "y", ms: 30_000 } });
      expect((await modernAs("alice", "tasks/cancel", { taskId: slow.result!.taskId })).result).toMatchObject({ resultType: "complete" });
      expect((await modernAs("alice", "tasks/get", { taskId: slow.result!.taskId })).result).toMatchObject({ status: "cancelled" });
    }, 60_000);

    test("1.32.2 agent: the pin says taskSupport optional; a task call is relayed as a 2025 task, its question asked on the tasks/result stream, and cancel answers the task", async () => {
      const alice = await legacyAgent("alice", FORM);
      const asked: string[] = [];
      alice.setRequestHandler(ElicitRequestSchema, async (request) => {
        asked.push(request.params.message);
        return { action: "accept", content: { meaning: "reptile" } };
      });
      try {
        const listed = (await alice.listTools()).tools.find((t) => t.name === names["modern/research"]);
        expect(listed?.execution).toEqual({ taskSupport: "optional" });
        const plain = await alice.request({ method: "tools/call", params: { name: names["modern/research"]!, arguments: { topic: "moons" }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
        expect(plain.task).toMatchObject({ taskId: expect.stringMatching(/^mt2\./), status: "working", ttl: 60_000, pollInterval: 100 });
        const result = await alice.experimental.tasks.getTaskResult(plain.task.taskId, CallToolResultSchema);
        expect(result.content).toEqual([{ type: "text", text: "research on moons" }]);
        expect((await alice.experimental.tasks.getTask(plain.task.taskId)).status).toBe("completed");

        const asking = await alice.request({ method: "tools/call", params: { name: names["modern/research"]!, arguments: { topic: "python", ask: true }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
        const answered = await alice.experimental.tasks.getTaskResult(asking.task.taskId, CallToolResultSchema);
        expect(answered.content).toEqual([{ type: "text", text: "research on python: reptile" }]);
        expect(asked).toEqual(["Which python?"]);

        const slow = await alice.request({ method: "tools/call", params: { name: names["modern/research"]!, arguments: { topic: "z", ms: 30_000 }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
        expect((await alice.experimental.tasks.cancelTask(slow.task.taskId)).status).toBe("cancelled");

        // Over stdio the SDK client cannot take a task: such an upstream's tools are not listed as offering them.
        const overStdio = (await alice.listTools()).tools.find((t) => t.name === names["modern-stdio/research"]);
        expect(overStdio).toBeDefined();
        expect(overStdio?.execution).toBeUndefined();
        expect((await alice.callTool({ name: names["modern-stdio/echo"]!, arguments: { message: "plain" } })).content).toEqual([{ type: "text", text: "echo: plain" }]);
      } finally {
        await alice.close();
      }
    }, 60_000);
  });

  describe("a 2025 upstream's tasks, for a 2026-07-28 agent", () => {
    test("a tool that may answer with a task (taskSupport optional), called by a declaring agent: a 2025 upstream is not asked for one and answers at once", async () => {
      const answer = await modernAs("alice", "tools/call", { name: names["plain/maybe-task"], arguments: {} });
      expect(answer.result, JSON.stringify(answer)).toMatchObject({ resultType: "complete", content: [{ type: "text", text: "answered at once" }] });
      // The contrast: a 1.32.2 agent's own `task` does reach it, and this 1.x server (no tasks capability) refuses a task-augmented call.
      const alice = await legacyAgent("alice");
      try {
        const asked = await rpcError(alice.request({ method: "tools/call", params: { name: names["plain/maybe-task"]!, arguments: {}, task: { ttl: 1_000 } } }, CallToolResultSchema));
        expect(asked.message).toContain("does not support task creation");
      } finally {
        await alice.close();
      }
    }, 30_000);

    test.each(["everything", "everything-http"])("server-everything's question (asked on a tasks/result the connector holds, %s) is in tasks/get; tasks/update answers it and steers the task", async (upstream) => {
      const created = await modernAs("alice", "tools/call", { name: names[`${upstream}/simulate-research-query`], arguments: { topic: "python", ambiguous: true } }, declaring(FORM));
      expect(created.result?.resultType, JSON.stringify(created)).toBe("task");
      const handle = created.result!.taskId as string;
      const asking = await eventually(async () => {
        const got = await modernAs("alice", "tasks/get", { taskId: handle }, declaring(FORM));
        return Object.keys(got.result?.inputRequests ?? {}).length > 0 ? got : undefined;
      }, 20_000, 200);
      expect(asking.result?.status).toBe("input_required");
      const [key, question] = Object.entries(asking.result!.inputRequests as Record<string, { method: string; params: { message: string; _meta?: Record<string, unknown> } }>)[0]!;
      expect(question.method).toBe("elicitation/create");
      expect(question.params.message).toContain('"python" could have multiple interpretations');
      // The question names its task by the agent's handle, never by the upstream's own id.
      expect(question.params._meta?.["io.modelcontextprotocol/related-task"]).toEqual({ taskId: handle });

      // Mallory cannot answer alice's question: her tasks/update gets the made-up handle's answer.
      const madeUp = await modernAs("mallory", "tasks/update", { taskId: MADE_UP, inputResponses: {} }, declaring(FORM));
      expect(madeUp.error?.code).toBe(-32602);
      const stolen = await modernAs("mallory", "tasks/update", { taskId: handle, inputResponses: { [key]: { action: "accept", content: { interpretation: "comedy troupe" } } } }, declaring(FORM));
      expect(stolen.error).toEqual(madeUp.error);

      expect((await modernAs("alice", "tasks/update", { taskId: handle, inputResponses: { [key]: { action: "accept", content: { interpretation: "snake" } } } }, declaring(FORM))).result).toMatchObject({ resultType: "complete" });
      const done = await eventually(async () => {
        const got = await modernAs("alice", "tasks/get", { taskId: handle }, declaring(FORM));
        return got.result?.status === "completed" ? got : undefined;
      }, 20_000, 200);
      expect(JSON.stringify(done.result?.result)).toContain("Clarification**: snake");
    }, 60_000);
  });

  describe("notifications/tasks/status (2025-11-25) and notifications/tasks (2026-07-28)", () => {
    test.each(["everything", "everything-http"])("a 1.32.2 agent hears its task's status (%s) on its session, under its handle; another consumer's task on the same upstream session is heard only by that consumer", async (upstream) => {
      const [alice, mallory] = await Promise.all([legacyAgent("alice"), legacyAgent("mallory")]);
      const heard: { who: string; taskId: string; status: string }[] = [];
      alice.setNotificationHandler(TaskStatusNotificationSchema, (n) => void heard.push({ who: "alice", taskId: n.params.taskId, status: n.params.status }));
      mallory.setNotificationHandler(TaskStatusNotificationSchema, (n) => void heard.push({ who: "mallory", taskId: n.params.taskId, status: n.params.status }));
      try {
        const research = (agent: Client) => agent.request({ method: "tools/call", params: { name: names[`${upstream}/simulate-research-query`]!, arguments: { topic: "eels" }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
        const [ours, theirs] = await Promise.all([research(alice), research(mallory)]);
        await eventually(() => heard.filter((h) => h.status === "completed").length === 2 || undefined, 20_000, 100);
        const byWho = (who: string) => new Set(heard.filter((h) => h.who === who).map((h) => h.taskId));
        expect(byWho("alice")).toEqual(new Set([ours.task.taskId]));
        expect(byWho("mallory")).toEqual(new Set([theirs.task.taskId]));
      } finally {
        await Promise.all([alice.close(), mallory.close()]);
      }
    }, 60_000);

    test("subscriptions/listen asking for task ids without the extension is -32021; with it, none are promised", async () => {
      const listen = (capabilities: Record<string, unknown>) =>
        fetch(url, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${keys.alice}`, "mcp-protocol-version": MODERN, "mcp-method": "subscriptions/listen" },
          body: JSON.stringify({
            jsonrpc: "2.0",
            id: 7,
            method: "subscriptions/listen",
            params: {
              notifications: { taskIds: [MADE_UP], toolsListChanged: true },
              _meta: { "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" }, "io.modelcontextprotocol/clientCapabilities": capabilities },
            },
          }),
        });
      const refused = await listen({});
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: unknown }).error).toMatchObject({ code: -32021, data: { requiredCapabilities: { extensions: { [TASKS]: {} } } } });

      const accepted = await listen(declaring());
      expect(accepted.status).toBe(200);
      const reader = accepted.body!.getReader();
      let text = "";
      while (!text.includes("acknowledged")) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      const ack = JSON.parse(text.split("\n").find((l) => l.startsWith("data:") && l.includes("acknowledged"))!.slice(5));
      expect(ack.params.notifications.toolsListChanged).toBe(true);
      expect(ack.params.notifications.taskIds ?? []).toEqual([]);
    }, 30_000);
  });

  describe("attacks", () => {
    test("a forged or tampered handle, and another caller's handle, get one answer on every task method of both eras", async () => {
      const created = await modernAs("alice", "tools/call", { name: names["modern/research"], arguments: { topic: "secrets", ask: true } }, declaring(FORM));
      const handle = created.result!.taskId as string;
      const key = Object.keys((await settled("alice", handle, declaring(FORM))).result?.inputRequests ?? {})[0]!;
      expect(key).toMatch(/^which-/);
      const heardBefore = modern.state.updates.length;
      // One character of the sealed body changed (never a trailing character, whose low bits base64url may ignore).
      const tampered = `${handle.slice(0, -2)}${handle.at(-2) === "A" ? "B" : "A"}${handle.slice(-1)}`;
      const madeUp = await modernAs("mallory", "tasks/get", { taskId: MADE_UP });
      expect(madeUp.error?.code).toBe(-32602);
      for (const [who, taskId] of [["mallory", handle], ["alice", tampered], ["alice", MADE_UP]] as const) {
        for (const method of ["tasks/get", "tasks/update", "tasks/cancel"]) {
          const answer = await modernAs(who, method, { taskId, inputResponses: { [key]: { action: "accept", content: { meaning: "mine" } } } }, declaring(FORM));
          expect(answer.error, `${who} ${method}`).toEqual(madeUp.error);
        }
      }
      const mallory = await legacyAgent("mallory", FORM);
      try {
        expect((await rpcError(mallory.experimental.tasks.getTask(handle))).code).toBe(-32602);
        expect((await rpcError(mallory.experimental.tasks.getTaskResult(handle, CallToolResultSchema))).code).toBe(-32602);
      } finally {
        await mallory.close();
      }
      // Nothing of mallory's reached the upstream, and alice's task is untouched.
      expect(modern.state.updates.length).toBe(heardBefore);
      expect((await modernAs("alice", "tasks/get", { taskId: handle }, declaring(FORM))).result).toMatchObject({ status: "input_required", inputRequests: { [key]: expect.anything() } });
    }, 60_000);
  });
});
