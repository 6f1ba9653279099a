import { jsonRpcCodeOf } from "@manifold/contracts";
import type { ServiceProcess } from "@manifold/cli";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { KEY_ENV } from "../helpers/askStack.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { freeze } from "../helpers/freeze.js";
import { eventually } from "../helpers/mcp.js";
import { modernRequest, type ModernAnswer } from "../helpers/modernRequests.js";
import { spawnConnector } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A 2026-07-28 task whose connector replica is frozen (SIGSTOP), not gone (helper-177): while it
 * is away every refusal is retryable and says when to come back, and the same handle reads the
 * task again once it runs. A replica that stopped (SIGTERM) or was killed is still told gone.
 * Real processes throughout; the gateway's and connector's defaults (heartbeat 10 s, stale 30 s).
 */
let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof serveModernTasksHttp>>;
const connectors: ServiceProcess[] = [];
let url: string;
let research: string;
let key: string;
/** Both created on c1 while it was the only replica. */
let frozenTask: string;
let stoppedTask: string;

const answerOf = (got: ModernAnswer) => (got.error ? `${got.error.data?.code}/${got.error.data?.reason ?? ""}` : String(got.result?.status));
const createTask = async (ms: number) => {
  const created = await modernRequest(url, key, "tools/call", { name: research, arguments: { topic: "t", ms } });
  expect(created.result, JSON.stringify(created)).toMatchObject({ resultType: "task", status: "working" });
  return created.result!.taskId as string;
};
/** Every refusal while a replica is away: retryable, with when to come back. */
const expectRetryable = (got: ModernAnswer) => {
  expect(got.error, JSON.stringify(got)).toMatchObject({ code: jsonRpcCodeOf("upstream_unavailable", "modern"), data: { code: "upstream_unavailable" } });
  expect(typeof got.error!.data.retryAfterMs, JSON.stringify(got)).toBe("number");
};

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }, { connector: false }), serveModernTasksHttp()]);
  connectors.push(await spawnConnector(nats, "c1", "modern"));
  await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: upstream.url } });
  research = (await createVirtualServer(stack, "jobs", [{ upstream: "modern", tool: "research" }]))["modern/research"]!;
  key = (await grantedConsumers(stack, "jobs", ["ann"])).ann!;
  url = stack.mcpUrl("jobs");
  frozenTask = await createTask(20_000);
  stoppedTask = await createTask(120_000);
  connectors.push(await spawnConnector(nats, "c2", "modern"));
}, 90_000);

afterAll(async () => {
  for (const c of connectors) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGCONT");
  await Promise.all(connectors.map((c) => c.stop()));
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("a task's replica frozen 12 s: never task_not_found meanwhile, each refusal retryable with retryAfterMs; the task reads again after SIGCONT and completes", async () => {
  const c1 = connectors[0]!;
  const seen: string[] = [];
  const refusals: ModernAnswer[] = [];
  const poll = async (label: string) => {
    const got = await modernRequest(url, key, "tasks/get", { taskId: frozenTask });
    seen.push(`${label} ${answerOf(got)}`);
    if (got.error) refusals.push(got);
    return got;
  };
  await freeze(c1.child);
  const frozenAt = Date.now();
  try {
    while (Date.now() - frozenAt < 12_000) {
      await poll(`${((Date.now() - frozenAt) / 1_000).toFixed(1)}s`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    c1.child.kill("SIGCONT");
  }
  const resumedAt = Date.now();
  let back: number | undefined;
  while (back === undefined && Date.now() - resumedAt < 10_000) {
    if (!(await poll(`+${Date.now() - resumedAt}ms`)).error) back = Date.now() - resumedAt;
    else await new Promise((r) => setTimeout(r, 100));
  }
  console.info(`modernTaskFrozenReplica: frozen 12 s, answers: ${seen.join(", ")}; read again ${back} ms after SIGCONT`);
  // Before: task_not_found / task_replica_gone ("start the call again") from ~6 s in, while the task ran on.
  for (const refusal of refusals) expectRetryable(refusal);
  expect(back).toBeDefined();
  const done = await eventually(async () => {
    const got = await modernRequest(url, key, "tasks/get", { taskId: frozenTask });
    return got.result?.status === "working" ? undefined : got;
  }, 20_000, 250);
  expect(done.result, JSON.stringify(done)).toMatchObject({ status: "completed" });
}, 60_000);

test("a replica stopped gracefully (SIGTERM): its task is task_replica_gone at once", async () => {
  const c1 = connectors[0]!;
  c1.child.kill("SIGTERM");
  await new Promise((r) => c1.child.once("exit", r));
  const t0 = Date.now();
  const gone = await modernRequest(url, key, "tasks/get", { taskId: stoppedTask });
  console.info(`modernTaskFrozenReplica: stopped replica's task answered in ${Date.now() - t0} ms: ${answerOf(gone)}`);
  expect(gone.error, JSON.stringify(gone)).toMatchObject({ code: -32602, data: { code: "task_not_found", reason: "task_replica_gone" } });
  expect(Date.now() - t0).toBeLessThan(1_000);
}, 30_000);

test("a replica killed (SIGKILL): its task is task_replica_gone within the gateway's HEALTH_STALE_MS (30 s), retryable refusals until then", async () => {
  // c2 alone serves the upstream now: the task is its.
  const task = await createTask(120_000);
  connectors.push(await spawnConnector(nats, "c3", "modern"));
  const c2 = connectors[1]!;
  c2.child.kill("SIGKILL");
  await new Promise((r) => c2.child.once("exit", r));
  const killedAt = Date.now();
  const seen = new Set<string>();
  let got: ModernAnswer;
  for (;;) {
    got = await modernRequest(url, key, "tasks/get", { taskId: task });
    seen.add(answerOf(got));
    if (got.error?.data?.code === "task_not_found" || Date.now() - killedAt > 40_000) break;
    expectRetryable(got);
    await new Promise((r) => setTimeout(r, 500));
  }
  const goneIn = Date.now() - killedAt;
  console.info(`modernTaskFrozenReplica: killed replica's task told gone ${goneIn} ms after SIGKILL; answers: ${[...seen].join(", ")}`);
  expect(got.error, JSON.stringify(got)).toMatchObject({ code: -32602, data: { code: "task_not_found", reason: "task_replica_gone" } });
  // Its last heartbeat came before the kill, so it is HEALTH_STALE_MS old by 30 s after it: gone by then, plus one poll.
  expect(goneIn).toBeLessThan(32_000);
}, 90_000);
