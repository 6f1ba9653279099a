import { CallLiveness } from "@manifold/contracts";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startAskStack } from "../helpers/askStack.js";
import { registerUpstreams } from "../helpers/catalog.js";
import { modernRequest } from "../helpers/modernRequests.js";
import type { Stack } from "../helpers/stack.js";

// attack (found by an attacker helper): at the defaults (64 slots per upstream, a tool's share half
// of them), mallory makes 32 calls of a 2026-07-28 upstream's eliciting tool and never answers the
// rounds. The connector held each call's slots while its round waited for the agent, though nothing
// of it was upstream: alice's call of the same tool waited 9.6 s, its whole budget (15.6 ms alone).

const BUDGET_MS = 10_000;
let stack: Stack;
let ask: string;
let keys: Record<string, string>;
let close: () => Promise<void>;
/** The same tool on an upstream with a short budget, so its rounds time out within the test. */
let quickAsk: string;
const QUICK_MS = 1_500;

beforeAll(async () => {
  let modern: { url: string };
  ({ stack, ask, keys, close, modern } = await startAskStack({}, BUDGET_MS));
  await registerUpstreams(stack, { name: "quick", transport: { type: "streamable-http", url: modern.url }, options: { callTimeoutMs: QUICK_MS } });
  quickAsk = (await stack.admin.post("/v1/virtual-servers", { name: "quick", tools: [{ upstream: "quick", tool: "ask" }] })).body.tools[0].exposedName;
  for (const name of ["mallory", "alice"]) await stack.admin.post("/v1/virtual-servers/quick/grants", { grantId: name, subject: { consumer: name } });
}, 60_000);

afterAll(async () => close?.());

const elicit = { elicitation: { form: {} } };
type Round = { result?: { resultType?: string; requestState?: string; content?: { text?: string }[] } };

test("rounds nobody answers hold no slot: another tenant's call of the tool is not held up, and an answered round still completes", async () => {
  const url = stack.mcpUrl("shared");
  const paused = (await Promise.all(Array.from({ length: 32 }, () => modernRequest(url, keys.mallory!, "tools/call", { name: ask, arguments: {} }, elicit)))) as Round[];
  expect(paused.filter((a) => a.result?.resultType === "input_required")).toHaveLength(32);
  const started = performance.now();
  const alice = (await modernRequest(url, keys.alice!, "tools/call", { name: ask, arguments: {} }, elicit)) as Round;
  const ms = performance.now() - started;
  console.log(`alice's call of the tool beside mallory's 32 unanswered rounds: ${ms.toFixed(1)} ms (budget ${BUDGET_MS} ms)`);
  expect(alice.result?.resultType).toBe("input_required");
  expect(ms).toBeLessThan(1_000);
  // A round answered later takes its slots again and completes.
  const { requestState } = paused[0]!.result!;
  const answered = (await modernRequest(url, keys.mallory!, "tools/call", { name: ask, arguments: {}, requestState, inputResponses: { who: { action: "accept", content: { name: "Mallory" } } } }, elicit)) as Round;
  expect(answered.result?.content?.[0]?.text).toContain("Mallory");
}, 30_000);

// review finding: an unanswered round timed out as upstream_timeout while the call was "calling",
// so it counted against the tool's circuit breaker: six of them opened the tool's circuit for
// every tenant (-32010 "circuit open after 6 consecutive failures: the caller did not answer").
test("rounds nobody answers are not the upstream's failures: the tool's circuit stays closed for another tenant", async () => {
  const url = stack.mcpUrl("quick");
  const paused = (await Promise.all(Array.from({ length: 6 }, () => modernRequest(url, keys.mallory!, "tools/call", { name: quickAsk, arguments: {} }, elicit)))) as Round[];
  expect(paused.filter((a) => a.result?.resultType === "input_required")).toHaveLength(6);
  // Past the budget: every round has timed out at the connector.
  await new Promise((r) => setTimeout(r, QUICK_MS + 1_000));
  const alice = await modernRequest(url, keys.alice!, "tools/call", { name: quickAsk, arguments: {} }, elicit);
  expect(alice.result?.resultType, JSON.stringify(alice.error)).toBe("input_required");
}, 30_000);

test("a resumed call that works past the silence window is kept alive by its heartbeats, on the request that resumed it", async () => {
  const url = stack.mcpUrl("shared");
  const args = { afterMs: CallLiveness.silenceMs + 1_500 };
  const paused = (await modernRequest(url, keys.alice!, "tools/call", { name: ask, arguments: args }, elicit)) as Round;
  const started = Date.now();
  const answers = { who: { action: "accept", content: { name: "Alice" } } };
  const answered = (await modernRequest(url, keys.alice!, "tools/call", { name: ask, arguments: args, requestState: paused.result!.requestState, inputResponses: answers }, elicit)) as Round;
  expect(answered.result?.content?.[0]?.text).toContain("Alice");
  expect(Date.now() - started).toBeGreaterThanOrEqual(args.afterMs);
}, 30_000);
