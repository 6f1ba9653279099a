import { jsonRpcCodeOf } from "@manifold/contracts";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, CreateTaskResultSchema, ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { createMcpHandler } from "@modelcontextprotocol/server";
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { NatsServer } from "@manifold/nats-server";
import { serveModernTasksHttp } from "../fixtures/modern-tasks-upstream.mjs";
import { listen, modernServer, modernState, serveModernHttp } from "../fixtures/modern-upstream.mjs";
import { KEY_ENV } from "../helpers/askStack.js";
import { createVirtualServer, grantedConsumers, registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import { startNats, startStack, type Stack } from "../helpers/stack.js";

// attack: a hostile 2026-07-28 upstream answers each call with an `input_required` round the
// gateway cannot relay (more than 16 questions, a key longer than 128 characters, an empty key:
// `InputRequiredReply`). The agent is told at once that the round is malformed, but the connector
// had already relayed it and held it for the call's whole budget, counted among the caller's
// rounds out (`CONNECTOR_MAX_ROUNDS_PER_CALLER`, one bound over every upstream). Nobody can answer
// or abandon such a round, so a few calls of the hostile tool made the caller's calls of another,
// honest upstream's eliciting tool be refused `too_many_calls` until those budgets ran out.
// The same through a task: a 2026-07-28 upstream's task question under an empty key, relayed to a
// 2025 agent's `tasks/result`.

const BOUND = 4;
const BUDGET_MS = 20_000;
const form = (n: number) => ({ method: "elicitation/create", params: { mode: "form", message: `Question ${n}?`, requestedSchema: { type: "object", properties: {} } } });
/** The rounds the hostile `asks` tool answers with, in turn: none of them fits `InputRequiredReply`. */
const ROUNDS: Record<string, unknown>[] = [
  Object.fromEntries(Array.from({ length: 17 }, (_, n) => [`q${n}`, form(n)])),
  { ["k".repeat(129)]: form(0) },
  { "": form(0) },
  Object.fromEntries(Array.from({ length: 500 }, (_, n) => [`q${n}`, form(n)])),
];

let nats: NatsServer;
let stack: Stack;
let hostile: Awaited<ReturnType<typeof listen>>;
let honest: Awaited<ReturnType<typeof serveModernHttp>>;
let tasking: Awaited<ReturnType<typeof serveModernTasksHttp>>;
let tools: Record<string, string>;
let keys: Record<string, string>;
let asked = 0;

/** Answers tools/call of `asks` with the next of `ROUNDS`, written by hand (the SDK server would not send them). */
function asks(request: unknown, response: unknown): boolean {
  const [req, res] = [request as IncomingMessage, response as ServerResponse];
  if (req.method !== "POST" || req.headers["mcp-method"] !== "tools/call" || req.headers["mcp-name"] !== "asks") return false;
  let body = "";
  req.on("data", (chunk: Buffer) => (body += chunk.toString()));
  req.on("end", () => {
    const { id } = JSON.parse(body) as { id: unknown };
    const inputRequests = ROUNDS[asked++ % ROUNDS.length];
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ jsonrpc: "2.0", id, result: { resultType: "input_required", inputRequests, requestState: "hostile-state" } }));
  });
  return true;
}

beforeAll(async () => {
  nats = await startNats();
  const state = modernState();
  state.tools.push({ name: "asks", description: "Asks what cannot be relayed", inputSchema: { type: "object", properties: {}, required: [] } });
  const handler = createMcpHandler(() => modernServer(state), { legacy: "reject" });
  [stack, hostile, honest, tasking] = await Promise.all([
    startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV, CONNECTOR_MAX_ROUNDS_PER_CALLER: String(BOUND) }),
    listen(handler, 0, asks),
    serveModernHttp(),
    serveModernTasksHttp(),
  ]);
  await registerUpstreams(
    stack,
    { name: "hostile", transport: { type: "streamable-http", url: hostile.url }, options: { callTimeoutMs: BUDGET_MS } },
    { name: "honest", transport: { type: "streamable-http", url: honest.url }, options: { callTimeoutMs: BUDGET_MS } },
    { name: "tasking", transport: { type: "streamable-http", url: tasking.url }, options: { callTimeoutMs: BUDGET_MS } },
  );
  tools = await createVirtualServer(stack, "shared", [
    { upstream: "hostile", tool: "asks" },
    { upstream: "honest", tool: "ask" },
    { upstream: "tasking", tool: "research" },
  ]);
  keys = await grantedConsumers(stack, "shared", ["mallory", "trudy"]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await hostile?.close();
  await honest?.close();
  await tasking?.close();
  await nats?.stop();
});

const elicit = { elicitation: { form: {} } };
type Answer = { result?: { resultType?: string; requestState?: string }; error?: { code: number; message: string } };
const call = (key: string, name: string) => modernRequest(stack.mcpUrl("shared"), key, "tools/call", { name, arguments: {} }, elicit) as Promise<Answer>;

test("a round the gateway cannot relay is refused at the connector: it holds none of the caller's places, and her calls of another upstream still ask", async () => {
  const started = performance.now();
  const refused = [];
  for (let n = 0; n < BOUND; n++) refused.push(await call(keys.mallory!, tools["hostile/asks"]!));
  const refusedMs = performance.now() - started;
  for (const answer of refused) {
    expect(answer.error?.code, JSON.stringify(answer)).toBe(jsonRpcCodeOf("upstream_error", "modern"));
    expect(answer.error?.message).toContain("malformed");
  }
  expect(asked).toBe(BOUND);

  // Her call of the honest upstream's eliciting tool still gets its round.
  const honestAnswer = await call(keys.mallory!, tools["honest/ask"]!);
  console.log(`4 malformed rounds answered in ${refusedMs.toFixed(0)} ms; honest ask: ${JSON.stringify(honestAnswer).slice(0, 200)}`);
  expect(honestAnswer.error, JSON.stringify(honestAnswer.error)).toBeUndefined();
  expect(honestAnswer.result?.resultType).toBe("input_required");
}, 60_000);

test("a task's question under an empty key is not relayed to a 2025 agent's tasks/result: it holds none of the caller's places", async () => {
  const trudy = new Client({ name: "legacy-trudy", version: "1.0.0" }, { capabilities: elicit });
  await trudy.connect(new StreamableHTTPClientTransport(new URL(stack.mcpUrl("shared")), { requestInit: { headers: { authorization: `Bearer ${keys.trudy}` } } }));
  const asked: string[] = [];
  const results: Promise<string>[] = [];
  trudy.setRequestHandler(ElicitRequestSchema, async (request) => {
    asked.push(request.params.message);
    return { action: "accept", content: { meaning: "reptile" } };
  });
  try {
    // Before, each tasks/result failed within ~130 ms ("malformed"), its round held here for the budget.
    for (let n = 0; n < BOUND; n++) {
      const { task } = await trudy.request({ method: "tools/call", params: { name: tools["tasking/research"]!, arguments: { topic: "t", ask: true, key: "", ms: 50 }, task: { ttl: 60_000 } } }, CreateTaskResultSchema);
      results.push(trudy.experimental.tasks.getTaskResult(task.taskId, CallToolResultSchema).then((r) => JSON.stringify(r), (error: Error) => error.message));
    }
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(asked).toEqual([]);

    const honestAnswer = await call(keys.trudy!, tools["honest/ask"]!);
    expect(honestAnswer.error, JSON.stringify(honestAnswer.error)).toBeUndefined();
    expect(honestAnswer.result?.resultType).toBe("input_required");
    // The question that cannot be relayed stays unasked: no result comes while the task waits for it.
    const settled = await Promise.race([Promise.any(results), new Promise((resolve) => setTimeout(() => resolve("none"), 100))]);
    console.log(`tasks/result of a task whose question cannot be relayed, after 1.5 s: ${String(settled).slice(0, 160)}`);
    expect(settled).not.toContain("research on t");
  } finally {
    await trudy.close();
    await Promise.allSettled(results);
  }
}, 60_000);
