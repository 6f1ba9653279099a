import { freePort, type NatsServer } from "@manifold/nats-server";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { KEY_ENV } from "../helpers/askStack.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { eventually } from "../helpers/mcp.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A 2026-07-28 task (the tasks extension) polled across a nats-server killed and restarted on its
 * port and store (helper-176): while the bus is away, tasks/get says so at once (retryable); once it
 * is back, the same handle reads the task again, still running, and it completes.
 */
let natsPort: number;
let storeDir: string;
let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof serveModernTasksHttp>>;
let research: string;
let key: string;

beforeAll(async () => {
  natsPort = await freePort();
  storeDir = await mkdtemp(join(tmpdir(), "manifold-task-restart-"));
  nats = await startNats({ port: natsPort, storeDir });
  [stack, upstream] = await Promise.all([startStack(nats, { GATEWAY_AUTH: "required", ...KEY_ENV }), serveModernTasksHttp()]);
  await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: upstream.url } });
  research = (await createVirtualServer(stack, "jobs", [{ upstream: "modern", tool: "research" }]))["modern/research"]!;
  key = (await grantedConsumers(stack, "jobs", ["ann"])).ann!;
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
  await rm(storeDir, { recursive: true, force: true });
});

test("a task's handle across a nats-server restart: bus_unavailable at once while it is down, the task itself within seconds after", async () => {
  const url = stack.mcpUrl("jobs");
  const created = await modernRequest(url, key, "tools/call", { name: research, arguments: { topic: "t", ms: 8_000 } });
  expect(created.result, JSON.stringify(created)).toMatchObject({ resultType: "task", status: "working" });
  const taskId = created.result!.taskId as string;

  nats.process.kill("SIGKILL");
  await new Promise((r) => nats.process.once("exit", r));
  const t0 = Date.now();
  const during = await modernRequest(url, key, "tasks/get", { taskId });
  const refusedIn = Date.now() - t0;
  expect(during.error, JSON.stringify(during)).toMatchObject({ data: { code: "bus_unavailable" } });
  expect(refusedIn).toBeLessThan(2_000);
  await new Promise((r) => setTimeout(r, 2_000));

  nats = await startNats({ port: natsPort, storeDir });
  const restartedAt = Date.now();
  const seen: string[] = [];
  let back: number | undefined;
  while (Date.now() - restartedAt < 10_000) {
    const got = await modernRequest(url, key, "tasks/get", { taskId });
    seen.push(got.error ? `${got.error.data?.code}/${got.error.data?.reason ?? ""}` : String(got.result?.status));
    if (got.result?.status === "working" || got.result?.status === "completed") {
      back = Date.now() - restartedAt;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const answers = [...new Set(seen)];
  console.info(`modernTaskBusRestart: tasks/get refused in ${refusedIn} ms while down (${during.error?.data?.code}); the task read again ${back ?? "never (10 s)"} ms after the restart; answers meanwhile: ${answers.join(", ")}`);
  expect(back).toBeDefined();
  // Never told the task is gone while it runs: only the retryable bus refusal may come first.
  expect(answers.filter((a) => a !== "working" && a !== "completed" && !a.startsWith("bus_unavailable"))).toEqual([]);
  // And it ends as it would have without the restart.
  const done = await eventually(async () => {
    const got = await modernRequest(url, key, "tasks/get", { taskId });
    return got.result?.status === "working" ? undefined : got;
  }, 15_000, 200);
  expect(done.result, JSON.stringify(done)).toMatchObject({ status: "completed" });
}, 60_000);
