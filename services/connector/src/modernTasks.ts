import { InputRequest, MIN_POLL_INTERVAL_MS, ManifoldError, boundedTask, mayAsk, type InteractionCapabilities, type TaskRequest, isRecord } from "@manifold/contracts";
import { ProtocolError, type Client } from "@modelcontextprotocol/client";
import { z } from "zod";
import type { Interaction } from "./heldCall.js";
import { withoutUpstreamInfo } from "./modernRequest.js";

type Json = Record<string, unknown>;
/** Results passed on as the upstream wrote them (the gateway checks their size and depth, and maps task ids). */
const ANY_RESULT = z.looseObject({});
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
/** Polling a task for a 2025 agent's `tasks/result`: the upstream's `pollIntervalMs`, at most this (and at least `MIN_POLL_INTERVAL_MS`). */
const MAX_POLL_MS = 5_000;

/**
 * A 2026-07-28 `Task` (a `CreateTaskResult` or a `tasks/get` answer) in the 2025-11-25 shape the
 * bus carries: `ttlMs` is `ttl`, `pollIntervalMs` is `pollInterval`; the extension's inlined
 * `result`, `error` and `inputRequests` and the `resultType` are left out (each has its own way
 * across). Only the Task's own fields are kept (`boundedTask`): the rest of an upstream's bytes go nowhere.
 */
export function legacyTask(task: Json): Json {
  const { taskId, status, statusMessage, createdAt, lastUpdatedAt, ttlMs, pollIntervalMs } = task;
  return boundedTask({ taskId, status, statusMessage, createdAt, lastUpdatedAt, ttl: ttlMs, pollInterval: pollIntervalMs });
}

/** A modern upstream's answer to a task-augmented tools/call, as the bus carries it: a 2025 `CreateTaskResult` (its id told to `created`), or the result it answered at once. */
export function legacyCallAnswer(text: string, created?: (taskId: string) => void): string {
  const answer = JSON.parse(text) as Json;
  if (answer.resultType !== "task") return text;
  const task = legacyTask(answer);
  created?.(task.taskId as string);
  const meta = withoutUpstreamInfo(answer._meta);
  return JSON.stringify({ task, ...(isRecord(meta) ? { _meta: meta } : {}) });
}

/** The questions of an `input_required` task that this agent may be asked (malformed or refused ones left out). */
export function askable(task: Json, capabilities: InteractionCapabilities | undefined): Record<string, InputRequest> {
  const asked: Record<string, InputRequest> = {};
  if (task.status !== "input_required" || !isRecord(task.inputRequests)) return asked;
  for (const [key, raw] of Object.entries(task.inputRequests).slice(0, 16)) {
    const request = InputRequest.safeParse(raw);
    // Keys as the gateway reads a round (`InputRequiredReply`: 1 to 128 characters). Relayed under an
    // empty key, a question was refused there as malformed while it held one of its caller's rounds
    // out here, unanswerable, for the request's whole budget (unrelayableRounds.e2e).
    if (request.success && key.length > 0 && key.length <= 128 && mayAsk(capabilities, request.data)) asked[key] = request.data;
  }
  return asked;
}

/**
 * One request about a 2026-07-28 upstream's task, mapped onto the 2025-11-25 methods the bus
 * speaks. `tasks/get` and `tasks/cancel` (acknowledged upstream, then read) answer a `Task`;
 * `tasks/update` passes on only answers to questions the task has open and the agent may be
 * asked; `tasks/result` (a 2025 agent's) polls until the task ends, relays each round of
 * questions to the agent (`interaction`) and hands the answers to the upstream.
 */
export async function modernTaskRequest(client: Client, request: TaskRequest, timeoutMs: number, interaction: Interaction | undefined): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(deadline - Date.now(), 1);
  const taskId = request.taskId;
  const get = async () => (await client.request({ method: "tasks/get", params: { taskId } }, ANY_RESULT, { timeout: left() })) as Json;
  const update = (inputResponses: Json) => client.request({ method: "tasks/update", params: { taskId, inputResponses } } as never, ANY_RESULT, { timeout: left() });
  switch (request.method) {
    case "tasks/get": {
      const task = await get();
      const asked = interaction ? askable(task, interaction.capabilities) : {};
      return { ...legacyTask(task), ...(task.status === "input_required" && interaction ? { inputRequests: asked } : {}) };
    }
    case "tasks/cancel":
      await client.request({ method: "tasks/cancel", params: { taskId } }, ANY_RESULT, { timeout: left() });
      return legacyTask(await get());
    case "tasks/update": {
      const open = askable(await get(), interaction?.capabilities);
      const answers = Object.fromEntries(Object.entries(request.inputResponses ?? {}).filter(([key]) => key in open));
      if (Object.keys(answers).length > 0) await update(answers);
      return {};
    }
    case "tasks/result":
      return resultOf(get, update, interaction, deadline);
  }
}

/** A 2025 agent's blocking `tasks/result` over a modern task: its result, its JSON-RPC error, or a refusal. */
async function resultOf(get: () => Promise<Json>, update: (answers: Json) => Promise<unknown>, interaction: Interaction | undefined, deadline: number): Promise<Json> {
  // Keys are unique over a task's life (SEP-2663): each question is put to the agent once.
  const answered = new Set<string>();
  for (;;) {
    const task = await get();
    if (task.status === "completed") {
      if (!isRecord(task.result)) throw new ManifoldError("upstream_error", "the upstream's completed task has no result");
      return task.result;
    }
    if (task.status === "failed") {
      const error = isRecord(task.error) ? task.error : {};
      throw new ProtocolError(typeof error.code === "number" ? error.code : -32603, typeof error.message === "string" ? error.message : "the task failed", error.data);
    }
    if (TERMINAL.has(String(task.status))) throw new ManifoldError("upstream_error", "the task was cancelled");
    const open = Object.entries(askable(task, interaction?.capabilities)).filter(([key]) => !answered.has(key));
    if (interaction && open.length > 0) {
      for (const [key] of open) answered.add(key);
      await update(await interaction.ask(Object.fromEntries(open)));
      continue;
    }
    const wait = Math.min(Math.max(typeof task.pollIntervalMs === "number" ? task.pollIntervalMs : 1_000, MIN_POLL_INTERVAL_MS), MAX_POLL_MS);
    if (Date.now() + wait > deadline) throw new ManifoldError("upstream_timeout", "the task did not end in time");
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
