import { jsonRpcCodeOf } from "@manifold/contracts";
import { afterAll, beforeAll, expect, test } from "vitest";
import { startAskStack } from "../helpers/askStack.js";
import { modernRequest } from "../helpers/modernRequests.js";
import type { Stack } from "../helpers/stack.js";

// attack: a 2026-07-28 request ends with its round (`input_required`), so the gateway stops
// counting the call among its caller's calls in flight, while the connector holds the round (a
// subscription, a timer, the call's state) until it is answered or its budget ends. Mallory
// starting calls of an eliciting tool and never answering had no bound but her request rate
// times the call budget (1,000 requests a second × 60 s at the defaults), in the connector
// process every tenant's calls share.

const BOUND = 4;
let stack: Stack;
let ask: string;
let keys: Record<string, string>;
let close: () => Promise<void>;

beforeAll(async () => {
  ({ stack, ask, keys, close } = await startAskStack({ CONNECTOR_MAX_ROUNDS_PER_CALLER: String(BOUND) }, 20_000));
}, 60_000);

afterAll(async () => close?.());

const elicit = { elicitation: { form: {} } };
type Answer = { result?: { resultType?: string; requestState?: string; content?: { text?: string }[] }; error?: { code: number; message: string } };
const answers = (name: string) => ({ who: { action: "accept", content: { name } } });

test("one caller's unanswered rounds are bounded per connector replica; another caller's are not touched, and an answered round frees its place", async () => {
  const url = stack.mcpUrl("shared");
  const call = (key: string, extra: Record<string, unknown> = {}) => modernRequest(url, key, "tools/call", { name: ask, arguments: {}, ...extra }, elicit) as Promise<Answer>;
  const first = await Promise.all(Array.from({ length: BOUND + 2 }, () => call(keys.mallory!)));
  const paused = first.filter((a) => a.result?.resultType === "input_required");
  const refused = first.filter((a) => a.error);
  expect(paused).toHaveLength(BOUND);
  expect(refused).toHaveLength(2);
  for (const { error } of refused) {
    expect(error!.code).toBe(jsonRpcCodeOf("too_many_calls", "modern"));
    expect(error!.message).toContain(`at most ${BOUND}`);
  }

  // Alice's rounds are hers to count.
  const alice = await call(keys.alice!);
  expect(alice.result?.resultType, JSON.stringify(alice.error)).toBe("input_required");
  const done = await call(keys.alice!, { requestState: alice.result!.requestState, inputResponses: answers("Alice") });
  expect(done.result?.content?.[0]?.text).toContain("Alice");

  // Answering one of Mallory's rounds completes her call and gives its place back.
  const answered = await call(keys.mallory!, { requestState: paused[0]!.result!.requestState, inputResponses: answers("Mallory") });
  expect(answered.result?.content?.[0]?.text).toContain("Mallory");
  const again = await call(keys.mallory!);
  expect(again.result?.resultType, JSON.stringify(again.error)).toBe("input_required");
  const over = await call(keys.mallory!);
  expect(over.error?.code).toBe(jsonRpcCodeOf("too_many_calls", "modern"));
}, 60_000);
