import type { NatsServer } from "@manifold/nats-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateTaskResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { rawPost, SlowReaders, unreadOutcome, writesHeld } from "../helpers/slowReaders.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// helper-195: a task request's answer (a `tasks/result` is as large as the call's result) was checked
// against its caller's unread answer bytes only when admitted. A 2025 agent's `tasks/result` requests
// wait for their tasks, so all of them are admitted with nothing unread, and answer together as the
// tasks end: one caller's 8 results of 4 MB, read slowly, were all written.
const FIXTURE = new URL("../fixtures/countingTasksStdio.mjs", import.meta.url).pathname;
const RESULT_BYTES = 4_000_000;
const TASKS = 8;

describe("large task results asked for together, read slowly", () => {
  let nats: NatsServer;
  let stack: Stack;
  let hoarder: string;
  let job: string;
  const readers = new SlowReaders();
  let heldBytes: () => number;

  beforeAll(async () => {
    nats = await startNats({ extraConfig: ["max_payload: 8MB"] });
    // The tags the results repeat travel in the calls' bodies; the budget is not what this measures.
    stack = await startStack(nats.url, { GATEWAY_AUTH: "required", GATEWAY_BODY_LIMIT_BYTES: String(8 * 2 ** 20), GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "1000000" });
    await registerUpstreams(stack, { name: "counting", transport: { type: "stdio", command: process.execPath, args: [FIXTURE], protocol: "2025" } });
    job = (await createVirtualServer(stack, "jobs", [{ upstream: "counting", tool: "job" }]))["counting/job"]!;
    hoarder = (await grantedConsumers(stack, "jobs", ["hoarder"])).hoarder!;
    heldBytes = writesHeld(stack.gateway.app.server);
  }, 120_000);

  afterAll(async () => {
    readers.close();
    await stack?.close();
    await nats?.stop();
  });

  test("attack: one consumer's tasks/result answers that come together are bounded in unread bytes, as its calls are", async () => {
    const url = new URL(stack.mcpUrl("jobs"));
    const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { authorization: `Bearer ${hoarder}` } } });
    const client = new Client({ name: "hoarder", version: "1.0.0" });
    await client.connect(transport);
    const handles: string[] = [];
    for (let i = 0; i < TASKS; i++) {
      const params = { name: job, arguments: { tag: String(i).padEnd(RESULT_BYTES, "x"), ms: 6_000 }, task: { ttl: 300_000 } };
      handles.push((await client.request({ method: "tools/call", params }, CreateTaskResultSchema)).task.taskId);
    }
    const headers = { authorization: `Bearer ${hoarder}`, "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25", "mcp-session-id": transport.sessionId! };
    const before = heldBytes();
    const firsts = await readers.open(url, (i) => rawPost(url, headers, JSON.stringify({ jsonrpc: "2.0", id: `r${i}`, method: "tasks/result", params: { taskId: handles[i] } })), TASKS, 20, true);
    const { answered, refused, holding } = await unreadOutcome(firsts, TASKS, heldBytes, before);
    await client.close();

    console.log(`[measure] ${TASKS} tasks/result of ${RESULT_BYTES / 1e6} MB answering together, read 4 KB/100 ms by one consumer: ${answered} answered, ${refused} refused answers_unread; the gateway holds ${(holding / 2 ** 20).toFixed(0)} MiB to write`);
    expect(answered + refused).toBe(TASKS);
    expect(refused).toBeGreaterThan(0);
    expect(holding).toBeLessThan(16 * 2 ** 20 + 2 * RESULT_BYTES);
  }, 120_000);
});
