import { ManifoldError } from "@manifold/contracts";
import type { Server } from "@modelcontextprotocol/server";
import { z } from "zod";
import type { CallDeps } from "./callPipeline.js";
import type { McpCall } from "./mcpCall.js";
import { JsonRpcError, toJsonRpcError } from "./jsonRpc.js";
import { requestTask, taskBinding } from "./tasks.js";

type Json = Record<string, unknown>;
const isRecord = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
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
  const rpc = error instanceof JsonRpcError ? error : error instanceof ManifoldError ? toJsonRpcError(error) : undefined;
  return rpc ? { code: rpc.code, message: rpc.message, ...(rpc.data !== undefined ? { data: rpc.data } : {}) } : { code: -32603, message: "the task failed" };
};

/**
 * The tasks extension's methods on a 2026-07-28 virtual server, over upstreams that speak
 * 2025-11-25 tasks: `tasks/get` (with the result or error inlined once the task ends, from the
 * upstream's `tasks/result`), `tasks/cancel`, and `tasks/update` (acknowledged: no task here
 * asks its agent anything, so every key is unknown and ignored, as the extension allows). Each
 * opens the caller's handle first: another caller's task is `task_not_found`, like a made-up one.
 */
export function serveModernTasks(server: Server, deps: CallDeps, callOf: () => McpCall, asProtocolError: (error: unknown) => unknown): void {
  const guarded =
    (run: (call: McpCall, taskId: string) => Promise<Json>) =>
    async ({ taskId }: { taskId: string }): Promise<Json> => {
      try {
        return { ...(await run(callOf(), taskId)), resultType: "complete" };
      } catch (error) {
        throw asProtocolError(error instanceof ManifoldError ? toJsonRpcError(error) : error);
      }
    };
  server.setRequestHandler(
    "tasks/get",
    { params: TaskParams },
    guarded(async (call, taskId) => {
      const task = modernTask(await requestTask(deps, call, "tasks/get", taskId));
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
    guarded(async (call, taskId) => {
      if (!deps.taskHandles.open(taskId, taskBinding(call))) throw new ManifoldError("task_not_found", "no such task");
      return {};
    }) as never,
  );
}
