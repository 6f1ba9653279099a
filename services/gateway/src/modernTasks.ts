import { InputRequest, ManifoldError, TaskRequest, mayAsk, type InteractionCapabilities, isRecord } from "@manifold/contracts";
import type { Server, ServerContext } from "@modelcontextprotocol/server";
import { z } from "zod";
import type { CallDeps } from "./callDeps.js";
import type { McpCall } from "./mcpCall.js";
import { allowedInteractions, callerDigest, envelopeCapabilities } from "./interactions.js";
import { JsonRpcError, toJsonRpcError } from "./jsonRpc.js";
import { requestTask, type TaskInteraction } from "./tasks.js";

type Json = Record<string, unknown>;
const TaskParams = z.looseObject({ taskId: z.string().max(2048) });

/**
 * A 2025-11-25 `Task` as the 2026-07-28 tasks extension shows it (SEP-2663): `ttl` is `ttlMs`
 * (null: unlimited), `pollInterval` is `pollIntervalMs`; the rest is the same.
 */
function modernTask(task: Json): Json {
  const { ttl, pollInterval, ...rest } = task;
  return { ...rest, ttlMs: typeof ttl === "number" ? ttl : null, ...(typeof pollInterval === "number" ? { pollIntervalMs: pollInterval } : {}) };
}

/** A created task (its id already the caller's handle) as a 2026-07-28 `CreateTaskResult`. */
export function modernCreated(created: Json): Json {
  return isRecord(created.task) ? { ...modernTask(created.task), resultType: "task" } : created;
}

/** A JSON-RPC error as the `error` of a failed task. */
const asTaskError = (error: unknown): Json => {
  const rpc = error instanceof JsonRpcError ? error : error instanceof ManifoldError ? toJsonRpcError(error, "modern") : undefined;
  return rpc ? { code: rpc.code, message: rpc.message, ...(rpc.data !== undefined ? { data: rpc.data } : {}) } : { code: -32603, message: "the task failed" };
};

/** What this request's agent may be asked (declared in its envelope and allowed by the virtual server), and who it is. */
function interactionOf(deps: CallDeps, call: McpCall): TaskInteraction | undefined {
  const capabilities = allowedInteractions(deps.catalog, call, envelopeCapabilities(call));
  return capabilities && { capabilities, caller: callerDigest(call.principal) };
}

/** The open questions the connector named, each checked again: only well-formed ones this agent may be asked. */
function inputRequestsOf(named: unknown, capabilities: InteractionCapabilities | undefined): Json {
  const asked: Json = {};
  if (!isRecord(named)) return asked;
  for (const [key, raw] of Object.entries(named).slice(0, 16)) {
    const request = InputRequest.safeParse(raw);
    if (request.success && mayAsk(capabilities, request.data)) asked[key] = request.data;
  }
  return asked;
}

/**
 * The tasks extension's methods on a 2026-07-28 virtual server, over upstreams of either era
 * (the connector maps a 2026-07-28 upstream's onto the 2025-11-25 shapes): `tasks/get` (with the
 * result or error inlined once the task ends, and the questions open to this agent while it is
 * `input_required`), `tasks/update` (the agent's answers, to the task's open questions only), and
 * `tasks/cancel`. Each opens the caller's handle first: another caller's task is `task_not_found`,
 * like a made-up one.
 */
export function serveModernTasks(server: Server, deps: CallDeps, callOf: () => McpCall, asProtocolError: (error: unknown) => unknown): void {
  const guarded =
    (run: (call: McpCall, taskId: string, ctx: ServerContext) => Promise<Json>) =>
    async ({ taskId }: { taskId: string }, ctx: ServerContext): Promise<Json> => {
      let call: McpCall | undefined;
      try {
        return { ...(await run((call = callOf()), taskId, ctx)), resultType: "complete" };
      } catch (error) {
        throw asProtocolError(error instanceof ManifoldError ? toJsonRpcError(error, "modern", call) : error);
      }
    };
  server.setRequestHandler(
    "tasks/get",
    { params: TaskParams },
    guarded(async (call, taskId) => {
      const interaction = interactionOf(deps, call);
      const { inputRequests, ...got } = await requestTask(deps, call, "tasks/get", taskId, interaction);
      const task = modernTask(got);
      // SEP-2663: an input_required task names its open questions (here: those this agent may be asked).
      if (task.status === "input_required") return { ...task, inputRequests: inputRequestsOf(inputRequests, interaction?.capabilities) };
      if (task.status === "completed") return { ...task, result: await requestTask(deps, call, "tasks/result", taskId) };
      if (task.status === "failed") return { ...task, error: await requestTask(deps, call, "tasks/result", taskId).then(() => ({ code: -32603, message: "the task failed" }), asTaskError) };
      return task;
    }) as never,
  );
  server.setRequestHandler(
    "tasks/cancel",
    { params: TaskParams },
    guarded(async (call, taskId) => {
      await requestTask(deps, call, "tasks/cancel", taskId);
      return {};
    }) as never,
  );
  server.setRequestHandler(
    "tasks/update",
    { params: TaskParams },
    guarded(async (call, taskId, ctx) => {
      // The SDK lifts `inputResponses` out of params; their shape and count are checked as the bus carries them.
      const answers = TaskRequest.shape.inputResponses.safeParse(ctx.mcpReq.inputResponses ?? {});
      if (!answers.success) throw new ManifoldError("invalid_arguments", "invalid params: inputResponses must map at most 16 keys to objects");
      // Without anything this agent may be asked, no answer of its goes on: only the handle is checked.
      const interaction = interactionOf(deps, call);
      await requestTask(deps, call, "tasks/update", taskId, interaction, interaction ? answers.data : {});
      return {};
    }) as never,
  );
}
