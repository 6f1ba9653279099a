import { INVALID_RESULT, JSON_TOO_DEEP, JsonLimits, ManifoldError, INPUT_REQUIRED, unreadableNumbersOrDepth } from "@manifold/contracts";
import { ProtocolError, type Progress } from "@modelcontextprotocol/client";
import type { DirectCallOptions } from "./directCall.js";
import { judgedResult } from "./modernRequest.js";
import { UnreadableAnswer, mustNotNestTooDeep, numberOutOfRange } from "./upstreamErrors.js";
import { resultTextOf } from "./resultText.js";
import { callResultOf, isTaskAnswer } from "./callResultShape.js";

/** A JSON-RPC message on a call's response: its answer, or a request or notification of the upstream's. */
export type JsonRpcAnswer = {
  id?: unknown;
  method?: string;
  params?: Progress & { progressToken?: unknown };
  result?: { resultType?: unknown };
  error?: { code: number; message: string; data?: unknown };
};

/** A 2026-07-28 upstream's `input_required` answer, for a call whose agent may be asked. */
export class InputRequiredRound extends Error {
  constructor(readonly result: { inputRequests?: unknown; requestState?: unknown }) {
    super("input required");
  }
}

/** A body or event as JSON-RPC; one that is not JSON is `UnreadableAnswer`, its text not quoted. */
export function answerOf(text: string): JsonRpcAnswer {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    throw new UnreadableAnswer();
  }
  // `null` (or any non-object) read as a message threw a TypeError, taken for an unreachable
  // upstream: its shared session was dropped and its breaker counted, for every caller.
  if (typeof message !== "object" || message === null || Array.isArray(message)) throw new UnreadableAnswer();
  return message as JsonRpcAnswer;
}

/**
 * The serialized result of the call's answer `message`, or what it fails with. `text`: the answer
 * as it came (the JSON body, or the SSE event's data).
 */
export function resultOfAnswer(message: JsonRpcAnswer, text: string, options: Pick<DirectCallOptions, "interaction" | "tasks" | "task">, modern: boolean): string {
  // One pass over the answer's text, which nests one level deeper than its result: no cost for
  // an answer too short to nest that deep and without an exponent. Only an answer that nests too
  // deep is walked to see whether its result does (the walk was ~3,000 instructions of a small
  // call); only one holding a number read as Infinity is walked for its path.
  const unreadable = unreadableNumbersOrDepth(text, message, JsonLimits.resultDepth + 1);
  if (typeof unreadable === "string") throw numberOutOfRange("the upstream", "tools/call answer", unreadable);
  const error = message.error;
  if (error) {
    // A JSON-RPC error has an integer code and a string message. Of anything else, building the
    // error threw inside undici's callback (a message of {"toString":1}) and the call never
    // settled, holding its slots for good; a code nested deep failed encoding the bus reply.
    if (!Number.isSafeInteger(error.code) || typeof error.message !== "string") {
      throw new ManifoldError("upstream_error", "the upstream answered tools/call with a JSON-RPC error that is not well formed", { reason: INVALID_RESULT });
    }
    throw new ProtocolError(error.code, error.message, error.data);
  }
  // A result is an object: anything else (or none) would be spliced into the agent's answer as broken JSON.
  if (typeof message.result !== "object" || message.result === null || Array.isArray(message.result)) {
    throw new ManifoldError("upstream_error", "the upstream answered tools/call with a result that is not an object");
  }
  if (unreadable === JSON_TOO_DEEP) mustNotNestTooDeep(message.result, "the upstream", "result");
  // A multi round-trip request wants the agent's input: relayed in rounds when the agent may be asked, refused otherwise.
  if (message.result?.resultType === "input_required") {
    if (options.interaction) throw new InputRequiredRound(message.result as { inputRequests?: unknown });
    throw new ManifoldError("upstream_error", "the upstream asked for the caller's input (input_required), which Manifold does not relay", { reason: INPUT_REQUIRED });
  }
  // A call that may answer with a task may answer one (the gateway bounds it); anything else is a tool result.
  const answered = (options.tasks || options.task !== undefined) && isTaskAnswer(message.result) ? message.result : callResultOf(message.result, "the upstream");
  const result = judgedResult(answered as Record<string, unknown>, modern, options.tasks === true);
  // Passed on as written when it may be (`resultTextOf`): written again, it was the answer's costliest step.
  return (result === message.result ? resultTextOf(text) : undefined) ?? JSON.stringify(result);
}

/** The JSON-RPC error in a refusal's body, when it carries one. */
export function jsonRpcError(text: string): ProtocolError | undefined {
  try {
    const { error } = JSON.parse(text) as JsonRpcAnswer;
    return error && typeof error.code === "number" && typeof error.message === "string" ? new ProtocolError(error.code, error.message, error.data) : undefined;
  } catch {
    return undefined;
  }
}
