import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema, TaskStatusNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const FIXTURE = new URL("../fixtures/countingTasksStdio.mjs", import.meta.url).pathname;
const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "r".repeat(48) };
const MADE_UP = "mt2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A caller's JSON-RPC refusal, as the agent sees it (or what it got instead). */
const refusal = (call: Promise<unknown>): Promise<{ code?: number | undefined; message?: string; got?: string }> =>
  call.then(
    (value) => ({ got: JSON.stringify(value) }),
    (error: { code?: number; message: string }) => ({ code: error.code, message: error.message }),
  );

/**
 * Attack (helper-111): a 2025 upstream that numbers its tasks per process ("1", "2", ... again from
 * "1" after a restart) is killed, and the connector reconnects to a new process. Alice's handles
 * from before named the upstream's ids "1" and "2" on the upstream, replica and tool alone; once
 * bob's new tasks took those ids, alice's old handles opened bob's: she read his result, saw his
 * task in her tasks/list and cancelled his running task. A handle now names the upstream
 * connection that created its task, and a task of a connection since closed is `task_not_found`.
 */
let nats: NatsServer;
let stack: Stack;
let dir: string;
let url: string;
let names: Record<string, string>;
const keys: Record<string, string> = {};

const agent = async (consumer: string) => {
  const client = new Client({ name: `agent-${consumer}`, version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
  return client;
};
const createTask = async (client: Client, tag: string, ms = 0) =>
  (await client.request({ method: "tools/call", params: { name: names["counting/job"]!, arguments: { tag, ms }, task: { ttl: 300_000 } } }, CreateTaskResultSchema)).task.taskId;
const pidOf = async () => Number(await readFile(join(dir, "upstream.pid"), "utf8"));
const FORM = { elicitation: { form: {} } };

/** Kills the upstream's process, then makes `create` (a task call) until the connector's new process answers it. */
async function restartedThen<T>(create: () => Promise<T | undefined>): Promise<T> {
  const before = await pidOf();
  process.kill(before, "SIGKILL");
  for (let i = 0; i < 150; i++) {
    await sleep(100);
    if ((await pidOf().catch(() => before)) === before) continue;
    const created = await create().catch(() => undefined);
    if (created !== undefined) return created;
  }
  throw new Error("the upstream never came back");
}

beforeAll(async () => {
  nats = await startNats();
  dir = await mkdtemp(join(tmpdir(), "reconnected-tasks-"));
  stack = await startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV });
  await registerUpstreams(stack, {
    name: "counting",
    transport: { type: "stdio", command: process.execPath, args: [FIXTURE], env: { PID_FILE: join(dir, "upstream.pid") }, protocol: "2025" },
  });
  names = await createVirtualServer(stack, "jobs", [{ upstream: "counting", tool: "job" }]);
  url = stack.mcpUrl("jobs");
  Object.assign(keys, await grantedConsumers(stack, "jobs", ["alice", "bob"]));
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("a task handle from before its upstream restarted opens nothing, not the task that now has its id", async () => {
  const alice = await agent("alice");
  const bob = await agent("bob");
  try {
    // Upstream ids "1" and "2", on the first process.
    const aliceDone = await createTask(alice, "alice-1");
    const aliceRunning = await createTask(alice, "alice-2", 120_000);
    expect((await alice.experimental.tasks.getTaskResult(aliceDone, CallToolResultSchema)).content).toEqual([{ type: "text", text: "result of alice-1" }]);
    expect((await alice.experimental.tasks.getTask(aliceRunning)).status).toBe("working");

    // The upstream dies; the connector starts another process, which numbers its tasks from "1" again.
    const bobDone = await restartedThen(() => createTask(bob, "bob-secret"));
    const bobRunning = await createTask(bob, "bob-running", 120_000);

    // Alice's old handles (upstream ids "1" and "2") now name nothing: the answer a made-up handle gets.
    const madeUp = await refusal(alice.experimental.tasks.getTask(MADE_UP));
    expect(madeUp.code).toBe(-32602);
    expect.soft(await refusal(alice.experimental.tasks.getTask(aliceDone)), "tasks/get of an old handle").toEqual(madeUp);
    const result = await refusal(alice.experimental.tasks.getTaskResult(aliceDone, CallToolResultSchema));
    expect.soft(JSON.stringify(result), "tasks/result of an old handle").not.toContain("bob-secret");
    expect.soft(result, "tasks/result of an old handle").toEqual(madeUp);
    expect.soft(await refusal(alice.experimental.tasks.cancelTask(aliceRunning)), "tasks/cancel of an old handle").toEqual(madeUp);
    expect.soft((await alice.experimental.tasks.listTasks()).tasks, "alice's tasks/list").toEqual([]);

    // Bob's tasks are his, untouched: the one alice tried to cancel still runs, and he may cancel it.
    expect((await bob.experimental.tasks.getTaskResult(bobDone, CallToolResultSchema)).content).toEqual([{ type: "text", text: "result of bob-secret" }]);
    expect((await bob.experimental.tasks.getTask(bobRunning)).status).toBe("working");
    expect((await bob.experimental.tasks.cancelTask(bobRunning)).status).toBe("cancelled");
    expect((await bob.experimental.tasks.listTasks()).tasks.map((t) => t.taskId).sort()).toEqual([bobDone, bobRunning].sort());

    // And a task alice creates now is hers, as before.
    const aliceAfter = await createTask(alice, "alice-3");
    expect((await alice.experimental.tasks.getTaskResult(aliceAfter, CallToolResultSchema)).content).toEqual([{ type: "text", text: "result of alice-3" }]);
  } finally {
    await alice.close();
    await bob.close();
  }
}, 60_000);

test("a 2026-07-28 agent's handle from before the restart neither reads, answers nor cancels the task that now has its id", async () => {
  const call = (consumer: string, tag: string) =>
    modernRequest(url, keys[consumer]!, "tools/call", { name: names["counting/job"], arguments: { tag, ms: 120_000 } }, declaring(FORM)).then((a) => a.result?.taskId as string | undefined);
  // A fresh process: alice's task is its "1"; after the next restart, bob's is.
  const aliceOld = await restartedThen(() => call("alice", "alice-modern"));
  const bobNew = await restartedThen(() => call("bob", "bob-modern"));
  const as = (consumer: string, method: string, taskId: string) => modernRequest(url, keys[consumer]!, method, { taskId, inputResponses: {} }, declaring(FORM));
  const madeUp = (await as("alice", "tasks/get", MADE_UP)).error;
  expect(madeUp?.code).toBe(-32602);
  // tasks/get with questions it may be asked runs through the connector's task rounds (keyed by connection too).
  for (const method of ["tasks/get", "tasks/update", "tasks/cancel"]) expect.soft((await as("alice", method, aliceOld)).error, `alice's old handle, ${method}`).toEqual(madeUp);
  const bobs = await as("bob", "tasks/get", bobNew);
  expect(bobs.result).toMatchObject({ taskId: bobNew, status: "working" });
  expect((await as("bob", "tasks/cancel", bobNew)).error).toBeUndefined();
  expect((await as("bob", "tasks/get", bobNew)).result).toMatchObject({ status: "cancelled" });
}, 60_000);

test("a task's status notifications stop with its upstream connection: the next process's task of that id is not heard by its old caller", async () => {
  const alice = await agent("alice");
  const heard: { taskId: string; status: string }[] = [];
  alice.setNotificationHandler(TaskStatusNotificationSchema, (n) => void heard.push({ taskId: n.params.taskId, status: n.params.status }));
  try {
    // A fresh process: alice's tasks are its "1" (ends in 300 ms: she hears it) and "2" (runs on).
    const aliceHeard = await restartedThen(() => createTask(alice, "alice-short", 300));
    const aliceOld = await createTask(alice, "alice-long", 120_000);
    for (let i = 0; i < 100 && heard.length === 0; i++) await sleep(50);
    expect(heard, "alice hears her own task end").toEqual([{ taskId: aliceHeard, status: "completed" }]);
    // The next process: bob's tasks (a 2026-07-28 agent's, which name no status subject) are its "1" and "2".
    const bobCall = (tag: string, ms: number) =>
      modernRequest(url, keys.bob!, "tools/call", { name: names["counting/job"], arguments: { tag, ms } }, declaring()).then((a) => a.result?.taskId as string | undefined);
    await restartedThen(() => bobCall("bob-1", 0));
    const bobSecond = (await bobCall("bob-2", 300))!;
    for (let i = 0; i < 100; i++) {
      if ((await modernRequest(url, keys.bob!, "tasks/get", { taskId: bobSecond }, declaring())).result?.status === "completed") break;
      await sleep(50);
    }
    await sleep(500);
    // Before: the watch of alice's "2" (on the closed connection) relayed bob's "2" ending to her, under her handle.
    expect(heard.filter((h) => h.taskId === aliceOld), "bob's task's statuses under alice's old handle").toEqual([]);
  } finally {
    await alice.close();
  }
}, 60_000);
