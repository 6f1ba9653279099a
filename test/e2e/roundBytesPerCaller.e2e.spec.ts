import { jsonRpcCodeOf } from "@manifold/contracts";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createMcpHandler, inputRequired, Server } from "@modelcontextprotocol/server";
import { afterAll, beforeAll, expect, test } from "vitest";
import { listen } from "../fixtures/modern-upstream.mjs";
import { startAskStack } from "../helpers/askStack.js";
import { modernRequest } from "../helpers/modernRequests.js";
import type { Stack } from "../helpers/stack.js";

// attack (helper-212, 2026-12-07): a round held for its agent keeps its call, arguments and all, at
// the connector until it is answered or its budget ends, and a caller's rounds were bounded by
// number only (`CONNECTOR_MAX_ROUNDS_PER_CALLER`, 256). Mallory starting calls of an eliciting tool
// with 1 MB of arguments, and answering none, held ~1 MiB of the connector's heap per round
// (measured: +96 MiB for 100 rounds, so ~256 MiB per caller and connector replica at the
// defaults), in the process every tenant's calls share. Now they are bounded in bytes as well
// (`CONNECTOR_MAX_ROUND_BYTES_PER_CALLER`, 16 MiB: the call and its latest answers, which its next
// request carries); a small round still fits beside them.

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
/** The heap of this process, which runs the stack's connector, after collecting garbage. */
const heapMiB = () => (gc(), gc(), process.memoryUsage().heapUsed / 2 ** 20);

const BOUND_BYTES = 4 * 2 ** 20;
const CALLS = 10;
let stack: Stack;
let ask: string;
let keys: Record<string, string>;
let close: () => Promise<void>;
let twice: Awaited<ReturnType<typeof listen>>;
let twiceName: string;

/** A 2026-07-28 upstream whose one tool, `twice`, asks its agent two rounds before it answers. */
function askingTwice(): Server {
  const server = new Server({ name: "twice", version: "1" }, { capabilities: { tools: {} } });
  server.setRequestHandler("tools/list", () => ({ tools: [{ name: "twice", inputSchema: { type: "object" } }] }));
  server.setRequestHandler("tools/call", (_request, ctx) => {
    const answered = Object.keys(ctx.mcpReq.inputResponses ?? {});
    const who = { method: "elicitation/create", params: { mode: "form", message: "Who?", requestedSchema: { type: "object", properties: { name: { type: "string" } } } } };
    if (answered.includes("second")) return { content: [{ type: "text", text: "done" }] };
    return inputRequired({ inputRequests: answered.includes("first") ? { second: who } : { first: who }, requestState: "twice" } as Parameters<typeof inputRequired>[0]) as never;
  });
  return server;
}

beforeAll(async () => {
  ({ stack, ask, keys, close } = await startAskStack({ CONNECTOR_MAX_ROUND_BYTES_PER_CALLER: String(BOUND_BYTES) }, 30_000));
  twice = await listen(createMcpHandler(askingTwice, { legacy: "reject" }));
  expect((await stack.admin.post("/v1/upstreams", { name: "twice", transport: { type: "streamable-http", url: twice.url } })).status).toBeLessThan(300);
  const updated = await stack.admin.post("/v1/virtual-servers", { name: "twofold", tools: [{ upstream: "twice", tool: "twice" }] });
  expect(updated.status, JSON.stringify(updated.body)).toBe(201);
  twiceName = updated.body.tools[0].exposedName;
  await stack.admin.post("/v1/virtual-servers/twofold/grants", { grantId: "alice", subject: { consumer: "alice" } });
}, 60_000);

afterAll(async () => {
  await close?.();
  await twice?.close();
});

const elicit = { elicitation: { form: {} } };

/**
 * `send`, sent again a second later while the gateway's request budget refuses it: a 1 MB body costs
 * its caller's budget by its size, and these come back to back (others' tests share the machine).
 */
async function budgeted<T extends { error?: { data?: { code?: string } } }>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const answer = await send();
    if (answer.error?.data?.code !== "rate_limited" || attempt === 5) return answer;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}
type Answer = { result?: { resultType?: string; requestState?: string; content?: { text?: string }[] }; error?: { code: number; message: string; data?: { code?: string } } };

test("one caller's rounds are bounded in bytes per connector replica: large ones past the bound are refused, a small one still fits, another caller's are untouched", async () => {
  const url = stack.mcpUrl("shared");
  const call = (key: string, args: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => budgeted(() => modernRequest(url, key, "tools/call", { name: ask, arguments: args, ...extra }, elicit) as Promise<Answer>);
  const before = heapMiB();
  const large: Answer[] = [];
  for (let i = 0; i < CALLS; i++) large.push(await call(keys.mallory!, { pad: "x".repeat(1_000_000), i }));
  const grown = heapMiB() - before;
  const paused = large.filter((a) => a.result?.resultType === "input_required").length;
  const refused = large.filter((a) => a.error?.code === jsonRpcCodeOf("too_many_calls", "modern"));
  const figures = `${CALLS} unanswered calls of 1 MB: ${paused} rounds held, ${refused.length} refused; heap +${grown.toFixed(1)} MiB; ${JSON.stringify(large.map((a) => a.error?.data?.code ?? a.result?.resultType))}`;
  console.log(figures);
  // Before: 10 held, 0 refused, heap +9.6 MiB (+96 MiB for 100).
  expect(paused, figures).toBe(4);
  expect(refused, figures).toHaveLength(CALLS - 4);
  expect(refused[0]!.error!.message).toContain("bytes");
  expect(grown, figures).toBeLessThan(10);

  // A small round of hers fits beside them (the bound is on bytes, not on the 256 rounds).
  const small = await call(keys.mallory!);
  expect(small.result?.resultType, JSON.stringify(small.error)).toBe("input_required");
  // Alice's rounds are hers to count.
  const alice = await call(keys.alice!, { pad: "y".repeat(1_000_000) });
  expect(alice.result?.resultType, JSON.stringify(alice.error)).toBe("input_required");
  const done = await call(keys.alice!, { pad: "y".repeat(1_000_000) }, { requestState: alice.result!.requestState, inputResponses: { who: { action: "accept", content: { name: "Alice" } } } });
  expect(done.result?.content?.[0]?.text).toContain("Alice");
}, 60_000);

test("the answers a held call keeps count too: rounds held after 1 MB answers are bounded in bytes", async () => {
  // Alice this time: the rounds Mallory left above are still held, and count against her own bound.
  const url = stack.mcpUrl("twofold");
  const call = (extra: Record<string, unknown> = {}) => budgeted(() => modernRequest(url, keys.alice!, "tools/call", { name: twiceName, arguments: {}, ...extra }, elicit) as Promise<Answer>);
  const second: Answer[] = [];
  for (let i = 0; i < CALLS; i++) {
    const first = await call();
    if (!first.result?.requestState) {
      second.push(first);
      continue;
    }
    second.push(await call({ requestState: first.result.requestState, inputResponses: { first: { action: "accept", content: { name: "m".repeat(1_000_000) } } } }));
  }
  const paused = second.filter((a) => a.result?.resultType === "input_required").length;
  const refused = second.filter((a) => a.error?.code === jsonRpcCodeOf("too_many_calls", "modern")).length;
  const figures = `${CALLS} calls answered once with 1 MB and left at their second round: ${paused} held, ${refused} refused; ${JSON.stringify(second.map((a) => a.error?.message ?? a.result?.resultType))}`;
  console.log(figures);
  // Before: 9 held (the answers counted nowhere; one went otherwise), 0 refused.
  expect(paused, figures).toBe(4);
  expect(paused + refused, figures).toBe(CALLS);
}, 60_000);
