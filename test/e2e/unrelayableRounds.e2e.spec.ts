import { ErrorCode } from "@manifold/contracts";
import { createMcpHandler } from "@modelcontextprotocol/server";
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { NatsServer } from "@manifold/nats-server";
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
  [stack, hostile, honest] = await Promise.all([
    startStack(nats.url, { GATEWAY_AUTH: "required", ...KEY_ENV, CONNECTOR_MAX_ROUNDS_PER_CALLER: String(BOUND) }),
    listen(handler, 0, asks),
    serveModernHttp(),
  ]);
  await registerUpstreams(
    stack,
    { name: "hostile", transport: { type: "streamable-http", url: hostile.url }, options: { callTimeoutMs: BUDGET_MS } },
    { name: "honest", transport: { type: "streamable-http", url: honest.url }, options: { callTimeoutMs: BUDGET_MS } },
  );
  tools = await createVirtualServer(stack, "shared", [
    { upstream: "hostile", tool: "asks" },
    { upstream: "honest", tool: "ask" },
  ]);
  keys = await grantedConsumers(stack, "shared", ["mallory"]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
  await hostile?.close();
  await honest?.close();
  await nats?.stop();
});

const elicit = { elicitation: { form: {} } };
type Answer = { result?: { resultType?: string; requestState?: string }; error?: { code: number; message: string } };

test("a round the gateway cannot relay is refused at the connector: it holds none of the caller's places, and her calls of another upstream still ask", async () => {
  const url = stack.mcpUrl("shared");
  const call = (name: string) => modernRequest(url, keys.mallory!, "tools/call", { name, arguments: {} }, elicit) as Promise<Answer>;

  const started = performance.now();
  const refused = [];
  for (let n = 0; n < BOUND; n++) refused.push(await call(tools["hostile/asks"]!));
  const refusedMs = performance.now() - started;
  for (const answer of refused) {
    expect(answer.error?.code, JSON.stringify(answer)).toBe(ErrorCode.upstream_error.jsonRpc);
    expect(answer.error?.message).toContain("malformed");
  }
  expect(asked).toBe(BOUND);

  // Her call of the honest upstream's eliciting tool still gets its round.
  const honestAnswer = await call(tools["honest/ask"]!);
  console.log(`4 malformed rounds answered in ${refusedMs.toFixed(0)} ms; honest ask: ${JSON.stringify(honestAnswer).slice(0, 200)}`);
  expect(honestAnswer.error, JSON.stringify(honestAnswer.error)).toBeUndefined();
  expect(honestAnswer.result?.resultType).toBe("input_required");
}, 60_000);
