import { jsonRpcCodeOf } from "@manifold/contracts";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startAskStack } from "../helpers/askStack.js";
import { modernRequest } from "../helpers/modernRequests.js";
import type { Stack } from "../helpers/stack.js";

// attack (helper-212, 2026-12-07): a round held for its agent keeps its call, arguments and all, at
// the connector until it is answered or its budget ends, and a caller's rounds were bounded by
// number only (`CONNECTOR_MAX_ROUNDS_PER_CALLER`, 256). Mallory starting calls of an eliciting tool
// with 1 MB of arguments, and answering none, held ~1 MiB of the connector's heap per round
// (measured: +96 MiB for 100 rounds, so ~256 MiB per caller and connector replica at the
// defaults), in the process every tenant's calls share. Now they are bounded in bytes as well
// (`CONNECTOR_MAX_ROUND_BYTES_PER_CALLER`, 16 MiB); a small round still fits beside them.

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

beforeAll(async () => {
  ({ stack, ask, keys, close } = await startAskStack({ CONNECTOR_MAX_ROUND_BYTES_PER_CALLER: String(BOUND_BYTES) }, 30_000));
}, 60_000);

afterAll(async () => close?.());

const elicit = { elicitation: { form: {} } };
type Answer = { result?: { resultType?: string; requestState?: string; content?: { text?: string }[] }; error?: { code: number; message: string } };

test("one caller's rounds are bounded in bytes per connector replica: large ones past the bound are refused, a small one still fits, another caller's are untouched", async () => {
  const url = stack.mcpUrl("shared");
  const call = (key: string, args: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => modernRequest(url, key, "tools/call", { name: ask, arguments: args, ...extra }, elicit) as Promise<Answer>;
  const before = heapMiB();
  const large: Answer[] = [];
  for (let i = 0; i < CALLS; i++) large.push(await call(keys.mallory!, { pad: "x".repeat(1_000_000), i }));
  const grown = heapMiB() - before;
  const paused = large.filter((a) => a.result?.resultType === "input_required").length;
  const refused = large.filter((a) => a.error?.code === jsonRpcCodeOf("too_many_calls", "modern"));
  const figures = `${CALLS} unanswered calls of 1 MB: ${paused} rounds held, ${refused.length} refused; heap +${grown.toFixed(1)} MiB`;
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
