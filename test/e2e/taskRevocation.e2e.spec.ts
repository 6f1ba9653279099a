import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams, rpcError } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "a".repeat(48) };
const FORM = { elicitation: { form: {} } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack: an agent starts a task of a tool, the admin then denies that tool in its grant. The
 * handle is bound to the caller and the *upstream* only (`requestTask` accepts it while any
 * non-denied route of the same upstream exists), not to the tool that created it: the agent keeps
 * reading the denied tool's task (status, result) and answering its questions, in both eras.
 * Safe behaviour: after the tool is denied, every task request on a task it created is
 * `task_not_found`, as it is for a handle of a virtual server that no longer reaches the upstream.
 */
describe("a task outlives the denial of the tool that created it", () => {
  let nats: NatsServer;
  let stack: Stack;
  let modern: Awaited<ReturnType<typeof serveModernTasksHttp>>;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};
  let url: string;

  const legacyAgent = async (consumer: string) => {
    const client = new Client({ name: `legacy-${consumer}`, version: "1.0.0" }, { capabilities: {} });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return client;
  };
  const modernAs = (consumer: string, method: string, params: Record<string, unknown>, capabilities?: Record<string, unknown>) => modernRequest(url, keys[consumer]!, method, params, capabilities);

  /** Narrows the consumer's grant to deny `research`, and waits until a fresh call of it is refused: returns when (ms epoch). */
  const denyResearch = async (consumer: string) => {
    // A narrower grant replaces the open one (with several grants an item is denied only when every one denies it).
    const res = await stack.admin.post("/v1/virtual-servers/jobs/grants", { grantId: `${consumer}-narrow`, subject: { consumer }, deniedTools: [{ upstream: "modern", tool: "research" }] });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    expect((await stack.admin.request("DELETE", `/v1/virtual-servers/jobs/grants/${consumer}`)).status).toBe(204);
    const at = Date.now();
    for (let i = 0; i < 200; i++) {
      const probe = await modernAs(consumer, "tools/call", { name: names["modern/research"], arguments: { topic: "probe" } });
      if (probe.error?.data?.code === "unknown_tool") return at;
      await sleep(10);
    }
    throw new Error("the denial never took effect for new calls");
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, modern] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernTasksHttp()]);
    await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: modern.url } });
    names = await createVirtualServer(stack, "jobs", [
      { upstream: "modern", tool: "research" },
      { upstream: "modern", tool: "echo" },
    ]);
    url = stack.mcpUrl("jobs");
    Object.assign(keys, await grantedConsumers(stack, "jobs", ["alice", "bob", "carol"]));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await modern?.close();
    await nats?.stop();
  });

  test("2025-11-25 agent (SDK 1.x): tasks/get and tasks/result of a task of a tool denied since answer task_not_found", async () => {
    const alice = await legacyAgent("alice");
    try {
      const created = await alice.request({ method: "tools/call", params: { name: names["modern/research"]!, arguments: { topic: "merger-plans", ms: 1500 }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
      const handle = created.task.taskId;
      const deniedAt = await denyResearch("alice");
      // Control: the denial is in force for new calls on this very session.
      expect((await rpcError(alice.callTool({ name: names["modern/research"]!, arguments: { topic: "x" } }))).data).toMatchObject({ code: "unknown_tool" });

      const leaks: string[] = [];
      const got = await alice.experimental.tasks.getTask(handle).then((t) => `tasks/get → status ${t.status}`, () => undefined);
      if (got) leaks.push(`${got} (${Date.now() - deniedAt} ms after the denial)`);
      const result = await alice.experimental.tasks.getTaskResult(handle, CallToolResultSchema).then((r) => JSON.stringify(r.content), () => undefined);
      if (result) leaks.push(`tasks/result → ${result} (${Date.now() - deniedAt} ms after the denial)`);
      const listed = (await alice.experimental.tasks.listTasks()).tasks.map((t) => t.taskId);
      if (listed.includes(handle)) leaks.push(`tasks/list still lists it (${Date.now() - deniedAt} ms after the denial)`);
      expect(leaks, `a task of a denied tool kept working for a 2025 agent: ${leaks.join("; ")}`).toEqual([]);
    } finally {
      await alice.close();
    }
  }, 60_000);

  test("2026-07-28 agent (tasks extension): tasks/get of a task of a tool denied since answers task_not_found, never its result", async () => {
    const created = await modernAs("bob", "tools/call", { name: names["modern/research"], arguments: { topic: "layoff-list", ms: 1500 } });
    expect(created.result?.resultType, JSON.stringify(created)).toBe("task");
    const handle = created.result!.taskId as string;
    const deniedAt = await denyResearch("bob");
    let last: Awaited<ReturnType<typeof modernAs>> | undefined;
    let firstResultAt: number | undefined;
    for (let i = 0; i < 100; i++) {
      last = await modernAs("bob", "tasks/get", { taskId: handle });
      if (last.error) break;
      if (last.result?.status === "completed") {
        firstResultAt = Date.now() - deniedAt;
        break;
      }
      await sleep(100);
    }
    expect(
      last?.error?.data?.code,
      `bob's task of the denied tool answered ${JSON.stringify(last?.result)}${firstResultAt !== undefined ? `; its result was read ${firstResultAt} ms after the denial` : ""}`,
    ).toBe("task_not_found");
  }, 60_000);

  test("2026-07-28 agent: a question of a task of a tool denied since is neither shown nor answerable upstream", async () => {
    const created = await modernAs("carol", "tools/call", { name: names["modern/research"], arguments: { topic: "wire-transfer", ask: true, ms: 200 } }, declaring(FORM));
    const handle = created.result!.taskId as string;
    await sleep(400);
    const deniedAt = await denyResearch("carol");
    const asking = await modernAs("carol", "tasks/get", { taskId: handle }, declaring(FORM));
    const keysAsked = Object.keys((asking.result?.inputRequests as Record<string, unknown> | undefined) ?? {});
    const before = modern.state.updates.length;
    const update = await modernAs("carol", "tasks/update", { taskId: handle, inputResponses: Object.fromEntries(keysAsked.map((k) => [k, { action: "accept", content: { meaning: "approve" } }])) }, declaring(FORM));
    const reached = modern.state.updates.slice(before);
    const after = Date.now() - deniedAt;
    expect(
      { shown: keysAsked, reachedUpstream: reached.length },
      `after the denial carol was shown questions ${JSON.stringify(keysAsked)} (tasks/get: ${JSON.stringify(asking.result ?? asking.error)}) and her tasks/update (${JSON.stringify(update.result ?? update.error)}) put ${reached.length} answer(s) upstream ${after} ms after the denial`,
    ).toEqual({ shown: [], reachedUpstream: 0 });
  }, 60_000);
});
