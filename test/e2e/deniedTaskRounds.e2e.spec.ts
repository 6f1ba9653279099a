import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema, ElicitRequestSchema, TaskStatusNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { declaring, modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";
import { spawnEverything, type SpawnedUpstream } from "../helpers/upstreams.js";

const KEY_ENV = { GATEWAY_REQUEST_STATE_KEY: "env:MANIFOLD_SECRET_STATE_KEY", MANIFOLD_SECRET_STATE_KEY: "d".repeat(48) };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Attack (helper-104): a 2025 agent's task of server-everything's `simulate-research-query` runs;
 * the admin then denies that tool in the agent's grant. "A task of a tool denied since is
 * task_not_found: its result, status and questions are gone with the grant" held for requests made
 * after the denial, not for what was already open on the session: the answer to a question asked
 * on a `tasks/result` stream before the denial went upstream after it (and the result came back),
 * and the task's status notifications went on reaching the session.
 */
describe("a 2025 task's open rounds and status notifications follow its tool's denial", () => {
  let nats: NatsServer;
  let stack: Stack;
  let http: SpawnedUpstream;
  let names: Record<string, string>;
  const keys: Record<string, string> = {};
  let url: string;

  const legacyAgent = async (consumer: string, capabilities: Record<string, unknown> = {}) => {
    const client = new Client({ name: `legacy-${consumer}`, version: "1.0.0" }, { capabilities });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${keys[consumer]}` } } }));
    return client;
  };

  /** Narrows the consumer's grant to deny the research tool, and waits until a fresh call of it is refused: returns when (ms epoch). */
  const denyResearch = async (consumer: string) => {
    const res = await stack.admin.post("/v1/virtual-servers/jobs/grants", { grantId: `${consumer}-narrow`, subject: { consumer }, deniedTools: [{ upstream: "http", tool: "simulate-research-query" }] });
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    expect((await stack.admin.request("DELETE", `/v1/virtual-servers/jobs/grants/${consumer}`)).status).toBe(204);
    for (let i = 0; i < 200; i++) {
      const probe = await modernRequest(url, keys[consumer]!, "tools/call", { name: names["http/simulate-research-query"], arguments: { topic: "probe" } }, declaring({}, false));
      if (probe.error?.data?.code === "unknown_tool") return Date.now();
      await sleep(10);
    }
    throw new Error("the denial never took effect for new calls");
  };

  beforeAll(async () => {
    nats = await startNats();
    [stack, http] = await Promise.all([startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV }), spawnEverything("streamableHttp")]);
    await registerUpstreams(stack, { name: "http", transport: { type: "streamable-http", url: http.url } });
    names = await createVirtualServer(stack, "jobs", [
      { upstream: "http", tool: "simulate-research-query" },
      { upstream: "http", tool: "echo" },
    ]);
    url = stack.mcpUrl("jobs");
    Object.assign(keys, await grantedConsumers(stack, "jobs", ["alice", "bob"]));
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
    await http?.stop();
    await nats?.stop();
  });

  test("attack: the answer to a task's question, given after its tool was denied, does not reach the upstream; no result comes back", async () => {
    const alice = await legacyAgent("alice", { elicitation: { form: {} } });
    alice.setRequestHandler(ElicitRequestSchema, async () => {
      // The agent's user takes a moment; the admin denies the tool meanwhile.
      await denyResearch("alice");
      return { action: "accept", content: { interpretation: "snake" } };
    });
    try {
      const created = await alice.request({ method: "tools/call", params: { name: names["http/simulate-research-query"]!, arguments: { topic: "python", ambiguous: true }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
      const handle = created.task.taskId;
      let task = await alice.experimental.tasks.getTask(handle);
      while (task.status === "working") {
        await sleep(200);
        task = await alice.experimental.tasks.getTask(handle);
      }
      expect(task.status).toBe("input_required");
      const outcome = await alice.experimental.tasks.getTaskResult(handle, CallToolResultSchema).then(
        (r) => `result: ${JSON.stringify(r.content)}`,
        (e: { message: string }) => `refused: ${e.message}`,
      );
      // Before: "result: ... Clarification**: snake": the answer steered the denied tool's task and its result came back.
      expect(outcome).not.toContain("snake");
      expect(outcome.startsWith("refused"), outcome).toBe(true);
    } finally {
      await alice.close();
    }
  }, 60_000);

  test("attack: a task's status notifications stop reaching the session once its tool is denied", async () => {
    const bob = await legacyAgent("bob");
    const heard: { at: number; status: string; message?: string | undefined }[] = [];
    bob.setNotificationHandler(TaskStatusNotificationSchema, (n) => void heard.push({ at: Date.now(), status: n.params.status, message: n.params.statusMessage }));
    try {
      await bob.request({ method: "tools/call", params: { name: names["http/simulate-research-query"]!, arguments: { topic: "eels" }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
      for (let i = 0; i < 100 && heard.length === 0; i++) await sleep(50);
      expect(heard.length, "the task's first status was heard before the denial").toBeGreaterThan(0);
      const deniedAt = await denyResearch("bob");
      // The research runs four 1 s stages: its remaining statuses (and "completed") come after the denial.
      await sleep(5_000);
      const after = heard.filter((h) => h.at > deniedAt);
      expect(after, `heard after the denial: ${JSON.stringify(after)}`).toEqual([]);
    } finally {
      await bob.close();
    }
  }, 60_000);
});
