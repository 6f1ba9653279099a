import type { ServiceProcess } from "@manifold/cli";
import type { NatsServer } from "@manifold/nats-server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { KEY_ENV } from "../helpers/askStack.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { spawnConnector, spawnGateways } from "../helpers/replicas.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

/**
 * A 2026-07-28 task (the tasks extension) across faults (helper-164): the gateway replica that
 * created it killed, then the connector replica holding it stopped. Real processes throughout.
 */
let nats: NatsServer;
let stack: Stack;
let upstream: Awaited<ReturnType<typeof serveModernTasksHttp>>;
const connectors: ServiceProcess[] = [];
let gateways: Awaited<ReturnType<typeof spawnGateways>>;
let research: string;
let key: string;

const at = (port: number) => `http://127.0.0.1:${port}/mcp/jobs`;

beforeAll(async () => {
  nats = await startNats();
  [stack, upstream] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }, { connector: false }), serveModernTasksHttp({ countIds: true })]);
  connectors.push(await spawnConnector(nats, "c1", "modern"));
  await registerUpstreams(stack, { name: "modern", transport: { type: "streamable-http", url: upstream.url } });
  research = (await createVirtualServer(stack, "jobs", [{ upstream: "modern", tool: "research" }]))["modern/research"]!;
  key = (await grantedConsumers(stack, "jobs", ["ann"])).ann!;
  gateways = await spawnGateways(nats, { GATEWAY_AUTH: "required", ...KEY_ENV });
}, 90_000);

afterAll(async () => {
  await gateways?.stop();
  await Promise.all(connectors.map((c) => c.stop()));
  await stack?.close();
  await upstream?.close();
  await nats?.stop();
});

test("a task outlives the gateway replica that created it; its connector stopped, tasks/get and tasks/cancel say the task is gone, at once", async () => {
  const created = await modernRequest(at(gateways.ports[0]!), key, "tools/call", { name: research, arguments: { topic: "t", ms: 60_000 } });
  expect(created.result, JSON.stringify(created)).toMatchObject({ resultType: "task", status: "working" });
  const taskId = created.result!.taskId as string;
  gateways.processes[0]!.child.kill("SIGKILL");
  const elsewhere = await modernRequest(at(gateways.ports[1]!), key, "tasks/get", { taskId });
  console.info(`modernTaskFaults: tasks/get on another gateway replica: ${JSON.stringify(elsewhere.error ?? elsewhere.result)}`);
  expect(elsewhere.result).toMatchObject({ status: "working" });

  connectors.push(await spawnConnector(nats, "c2", "modern"));
  // Stopped (SIGTERM): it says goodbye. A killed one is told gone only once its last heartbeat is
  // HEALTH_STALE_MS old, having been "away" meanwhile, as a frozen one is (modernTaskFrozenReplica.e2e).
  const stopped = connectors.shift()!;
  stopped.child.kill("SIGTERM");
  await new Promise((r) => stopped.child.once("exit", r));
  for (const method of ["tasks/get", "tasks/cancel"]) {
    const t0 = Date.now();
    const gone = await modernRequest(at(gateways.ports[1]!), key, method, { taskId });
    console.info(`modernTaskFaults: ${method} with its connector stopped, in ${Date.now() - t0} ms: ${JSON.stringify(gone.error ?? gone.result)}`);
    // Before: -32010 upstream_unavailable "no connector is serving upstream 'modern'" (retryable) while c2
    // served it: the agent polled a handle that could never open again.
    expect(gone.error, JSON.stringify(gone)).toMatchObject({ code: -32602, data: { code: "task_not_found", reason: "task_replica_gone" } });
    expect(Date.now() - t0).toBeLessThan(1_000);
  }
}, 60_000);
