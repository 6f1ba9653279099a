import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "i".repeat(48) };

/**
 * Attack (review): a 2026-07-28 upstream keeps no session, so the connector's connection to it
 * outlives the upstream's restarts, and a handle names its task by the upstream's id on that
 * connection. An upstream that numbers its tasks from 1 again after a restart gave bob's new task
 * the id of alice's old one, and alice's old handle opened bob's task: she read his status and
 * result and could cancel it. A task is now answered only to the caller whose call created it.
 */
let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof serveModernTasksHttp>>;
let names: Record<string, string>;
let url: string;
const keys: Record<string, string> = {};

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernTasksHttp({ countIds: true })]);
  await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: upstream.url } });
  names = await createVirtualServer(stack, "jobs", [{ upstream: "modern", tool: "research" }]);
  url = stack.mcpUrl("jobs");
  Object.assign(keys, await grantedConsumers(stack, "jobs", ["alice", "bob"]));
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("attack: after the upstream restarts and numbers its tasks from 1 again, alice's old handle does not open bob's new task", async () => {
  const as = (consumer: string, method: string, params: Record<string, unknown>) => modernRequest(url, keys[consumer]!, method, params);
  const research = (consumer: string, topic: string) => as(consumer, "tools/call", { name: names["modern/research"], arguments: { topic, ms: 60_000 } });
  const alices = await research("alice", "alice's topic");
  const aliceHandle = alices.result?.taskId as string;
  expect(alices.result, JSON.stringify(alices)).toMatchObject({ resultType: "task", status: "working" });
  expect(upstream.state.tasks.has("1")).toBe(true);

  // The upstream restarts: every task forgotten, ids from 1 again.
  upstream.state.tasks.clear();
  upstream.state.count = 0;
  const bobs = await research("bob", "bob's topic");
  expect(bobs.result, JSON.stringify(bobs)).toMatchObject({ resultType: "task", statusMessage: "researching bob's topic" });
  expect(upstream.state.tasks.get("1")?.statusMessage).toBe("researching bob's topic");

  for (const method of ["tasks/get", "tasks/cancel"]) {
    const stale = await as("alice", method, { taskId: aliceHandle });
    expect(stale.error, `${method}: ${JSON.stringify(stale)}`).toMatchObject({ code: -32602 });
    expect(JSON.stringify(stale)).not.toContain("bob");
  }
  expect(upstream.state.tasks.get("1")?.status).toBe("working");
  // Bob's own handle still opens his task.
  const his = await as("bob", "tasks/get", { taskId: bobs.result?.taskId });
  expect(his.result).toMatchObject({ status: "working", statusMessage: "researching bob's topic" });
});
