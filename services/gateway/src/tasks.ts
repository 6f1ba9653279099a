import { BusHeader, JsonLimits, boundedTask, MAX_INPUT_ROUNDS, ManifoldError, RELATED_TASK, RESULT_TOO_DEEP, Subjects, TASK_EXTENSION, TaskRequest, jsonTextTooDeep, type InputRequiredReply, type InteractionCapabilities, type TaskMethod, isRecord } from "@manifold/contracts";
import { busRequest } from "@manifold/bus";
import { BUS_MARGIN_MS, answerOf, resumeToolCall } from "./toolCalls.js";
import type { CallDeps } from "./callDeps.js";
import { isDenied, type ToolRoute } from "./catalog.js";
import type { McpCall } from "./mcpCall.js";
import type { TaskHome } from "./taskHandles.js";
import type { CallAnswer } from "./toolCalls.js";
import { exposeResultUris } from "./resultUris.js";
import { toHeldReplica } from "./settledResume.js";
import { callerDigest } from "./interactions.js";
import { obtainedFor } from "./vault/delegatedCredentials.js";
import { mustFollowOutputSchema } from "./outputSchemaCheck.js";

type Json = Record<string, unknown>;

/** Who may use a task handle, and where: the caller, on this virtual server and environment. */
export const taskBinding = (call: Pick<McpCall, "virtualServer" | "environment" | "principal">): string => `${call.principal.id}\0${call.virtualServer}\0${call.environment}`;

/** How a route's pinned definition lets it be called (2025-11-25 `execution.taskSupport`; absent: forbidden). */
export const taskSupportOf = (route: ToolRoute): string => route.taskSupport ?? "forbidden";

/** Whether a 2026-07-28 request's capabilities declare the tasks extension. */
export const declaresTasks = (declared: Record<string, unknown> | undefined): boolean => {
  const extensions = declared?.extensions;
  return isRecord(extensions) && extensions[TASK_EXTENSION] !== undefined;
};

/** The one answer to a task id this caller does not hold, whatever the reason. */
const notFound = () => new ManifoldError("task_not_found", "no such task");

/** Connector text parsed, measured first (it is an upstream's bytes). */
function parsed(text: string): Json {
  if (jsonTextTooDeep(text, JsonLimits.resultDepth)) {
    throw new ManifoldError("upstream_error", `the result nests deeper than ${JsonLimits.resultDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth: JsonLimits.resultDepth });
  }
  const value = JSON.parse(text) as unknown;
  if (!isRecord(value)) throw new ManifoldError("upstream_error", "the upstream's answer is not an object");
  return value;
}

/**
 * An upstream's `CreateTaskResult` (2025-11-25: `{ task: Task }`) as the caller may see it: the
 * upstream's task id replaced by a handle sealed for this caller, naming the upstream, the
 * connector replica whose session holds the task and the session's connection that created it (a
 * restarted upstream numbers its tasks again: the same id on a later connection is another task).
 * Undefined for an answer that is not a task (the upstream ran the call at once): it is a call's result.
 */
export function sealCreatedTask(deps: CallDeps, call: McpCall, route: ToolRoute, answer: Pick<CallAnswer, "text" | "replica" | "connection">): Json | undefined {
  const result = parsed(answer.text);
  const task = result.task;
  if (!isRecord(task) || typeof task.taskId !== "string") return undefined;
  const { replica, connection } = answer;
  if (!replica || !connection) throw new ManifoldError("upstream_error", "the connector did not say where the task lives");
  const home = { upstream: route.upstream, tool: route.tool, replica, connection, taskId: task.taskId };
  const handle = deps.taskHandles.seal(home, taskBinding(call));
  // A CreateTaskResult is its Task and `_meta`: nothing else of an upstream's bytes reaches the agent,
  // and its `_meta` relates it to no other task (another caller's, on a shared session).
  const { _meta } = relatedByHandle({ _meta: result._meta }, home, handle);
  return { task: { ...boundedTask(task), taskId: handle }, ...(isRecord(_meta) ? { _meta } : {}) };
}

/**
 * `value` with the task `_meta` relates it to named by the caller's handle, or without that
 * relation when it names another of the upstream's tasks: an agent never sees an upstream's task id.
 */
function relatedByHandle(value: Json, home: TaskHome, handle: string): Json {
  const meta = value._meta;
  if (!isRecord(meta) || !isRecord(meta[RELATED_TASK])) return value;
  const { [RELATED_TASK]: related, ...rest } = meta;
  return { ...value, _meta: (related as Json).taskId === home.taskId ? { ...rest, [RELATED_TASK]: { ...(related as Json), taskId: handle } } : rest };
}

/** A task's open questions (`inputRequests`) as the caller may see them: each related to the task by its handle. */
function questionsByHandle(requests: unknown, home: TaskHome, handle: string): unknown {
  if (!isRecord(requests)) return requests;
  const mapped: Json = {};
  for (const [key, request] of Object.entries(requests)) {
    mapped[key] = isRecord(request) && isRecord(request.params) ? { ...request, params: relatedByHandle(request.params, home, handle) } : request;
  }
  return mapped;
}

/** A `tasks/get` or `tasks/cancel` answer (a Task, its `_meta`, and the open questions a 2026-07-28 agent may be asked) with nothing else in it. */
function taskAnswer({ _meta, inputRequests, ...task }: Json): Json {
  return { ...(isRecord(_meta) ? { _meta } : {}), ...boundedTask(task), ...(inputRequests !== undefined ? { inputRequests } : {}) };
}

/** The upstream's answer about a task, with its task ids (the task's own, a result's and its questions' related task) mapped back to the caller's handle. */
function unsealed(result: Json, home: TaskHome, handle: string): Json {
  const mapped = relatedByHandle({ ...result }, home, handle);
  // The answer is about this task, whatever id the upstream wrote: an agent only ever sees handles.
  if (mapped.taskId !== undefined) mapped.taskId = handle;
  if (isRecord(mapped.task) && mapped.task.taskId !== undefined) mapped.task = { ...mapped.task, taskId: handle };
  if (mapped.inputRequests !== undefined) mapped.inputRequests = questionsByHandle(mapped.inputRequests, home, handle);
  return mapped;
}

/** The route of the tool that created the task, by identity, while the caller may call it: a task of a tool denied or deselected since is gone for the caller. */
function routeOf(deps: CallDeps, call: Pick<McpCall, "virtualServer" | "environment">, home: TaskHome, denied: ReadonlySet<string>): ToolRoute | undefined {
  const view = deps.catalog.view(call.virtualServer, call.environment);
  return view?.routesTo(home.upstream, home.tool).find((r) => !isDenied(r, denied));
}

/** Whether the caller may still hear of the task `handle` names here (its status notifications): as a request about it now would find it. */
export function mayHearTask(deps: CallDeps, call: Pick<McpCall, "virtualServer" | "environment" | "principal">, handle: string): boolean {
  const home = deps.taskHandles.open(handle, taskBinding(call));
  const access = deps.accessNow(call);
  return home !== undefined && access !== undefined && routeOf(deps, call, home, access.denied) !== undefined;
}

/**
 * A task request's agent, when it may be asked the task's questions: 2025, on its `tasks/result`
 * stream (`ask`); 2026-07-28, in `tasks/get`'s `inputRequests`, answered with `tasks/update`.
 */
export interface TaskInteraction {
  capabilities: InteractionCapabilities;
  caller: string;
  /** Asks the agent one round; the answers it gave (a refused one left out). */
  ask?: ((input: InputRequiredReply, route: ToolRoute) => Promise<Record<string, unknown>>) | undefined;
}

/** When to ask again about a task whose replica is away: a thawed replica answered its tasks again 0.17 s after SIGCONT. */
export const TASK_REPLICA_RETRY_MS = 1_000;

/**
 * Why a task's replica did not answer, as the agent should act on it. Only the replica that
 * created the task can reach it (its connection, its owners): once that replica is gone, so is the
 * task (before, "no connector is serving upstream", retryable, while other replicas served it: an
 * agent polled for ever). But nobody answering is no proof it is gone: nats-server drops a frozen
 * replica (SIGSTOP, a stalled host, a partition) after 4-6 s too, and it answers again once it runs
 * (helper-177: frozen 12 s, `task_replica_gone` from 5.8 s in, and the task `working` 0.17 s after
 * SIGCONT: an agent that believed it ran the task twice). So a replica heard from within
 * HEALTH_STALE_MS that did not say goodbye is away: retryable. A killed one is told gone once its
 * last heartbeat is that old; one stopped gracefully said goodbye and is told gone at once.
 */
function unreachable(deps: CallDeps, home: TaskHome, error: unknown): unknown {
  if (!(error instanceof ManifoldError)) return error;
  const reason = error.data?.reason;
  if (reason === "no_connector" && !deps.health.away(home.upstream, home.replica)) {
    return new ManifoldError("task_not_found", "the connector replica that held this task is gone: the task cannot be reached; start the call again", { reason: "task_replica_gone" });
  }
  if (reason === "no_connector") {
    return new ManifoldError("upstream_unavailable", "the connector replica that holds this task is not answering (frozen, or cut off from the bus); ask again", { reason: "task_replica_away", retryAfterMs: TASK_REPLICA_RETRY_MS }, { cause: error });
  }
  // It held the request and went silent (it froze, or died): the task is no more lost than above.
  if (reason === "connector_lost") return new ManifoldError(error.code, error.message, { ...error.data, retryAfterMs: TASK_REPLICA_RETRY_MS }, { cause: error });
  return error;
}

/**
 * One request about a task the caller holds (`tasks/get`, `tasks/result`, `tasks/cancel`,
 * `tasks/update`), to the connector replica whose upstream session created it. A handle this
 * caller does not hold here, or whose tool the virtual server no longer offers this caller, is
 * `task_not_found`; so is one whose upstream connection has closed since (the connector says so). With `interaction`, the upstream's questions during the request
 * (2025: a task's elicitation, sent on the `tasks/result` stream) go to the agent in rounds, like
 * a call's, and a `tasks/get` names the questions open now (2026-07-28: `inputRequests`).
 */
export async function requestTask(deps: CallDeps, call: McpCall, method: TaskMethod, handle: unknown, interaction?: TaskInteraction, inputResponses?: TaskRequest["inputResponses"]): Promise<Json> {
  const home = deps.taskHandles.open(handle, taskBinding(call));
  const route = home && routeOf(deps, call, home, call.access.denied);
  if (!home || !route) throw notFound();
  const request: TaskRequest = { method, taskId: home.taskId, connection: home.connection, ...(inputResponses ? { inputResponses } : {}) };
  // The headers a call of this caller gets (pass-through, delegated credentials): they pick the upstream session that holds the task.
  const upstreamHeaders = await deps.delegated.headersFor(home.upstream, call, call.upstreamHeaders?.get(home.upstream));
  // Who asks, always: the connector shares the upstream's slots between callers by it.
  const headers: Record<string, string> = { [BusHeader.caller]: callerDigest(call.principal) };
  if (upstreamHeaders) headers[BusHeader.upstreamHeaders] = JSON.stringify(upstreamHeaders);
  const resource = obtainedFor(upstreamHeaders);
  if (resource) headers[BusHeader.upstreamResource] = resource;
  if (interaction) headers[BusHeader.interactions] = JSON.stringify(interaction.capabilities);
  const payload = Buffer.from(JSON.stringify(request));
  const send = () =>
    busRequest(deps.nc, Subjects.upstreamTasks(home.upstream, home.replica), payload, {
      timeoutMs: route.timeoutMs,
      busTimeoutMs: route.timeoutMs + BUS_MARGIN_MS,
      target: `upstream '${home.upstream}'`,
      headers,
      // `tasks/result` waits for the task: a connector that dies meanwhile is noticed within seconds.
      heartbeats: home.upstream,
    });
  const reply = await toHeldReplica(deps.nc, send).catch((error: unknown) => {
    throw unreachable(deps, home, error);
  });
  let answer = answerOf(reply, payload.length);
  // A task's result is as large as a call's, and requests admitted together answer together: each
  // waits for room among its caller's unread bytes. Not a cancellation, which a caller may always send.
  if (method !== "tasks/cancel") deps.inFlight.mustHaveRoom(call.principal);
  for (let round = 1; answer.input; round++) {
    if (!interaction?.ask || round > MAX_INPUT_ROUNDS) throw new ManifoldError("upstream_error", "the upstream asked for input the caller cannot give");
    const input = { ...answer.input, inputRequests: questionsByHandle(answer.input.inputRequests, home, handle as string) as typeof answer.input.inputRequests };
    const answers = await interaction.ask(input, route);
    // The caller's access when the answers come, not the request's: a question on a 2025
    // `tasks/result` stream may wait minutes, and a task of a tool denied since (or of a consumer
    // deleted since) is gone for the caller. Before, the answer went upstream and the result back.
    const access = deps.accessNow(call);
    if (!access || !routeOf(deps, call, home, access.denied)) throw notFound();
    answer = await resumeToolCall(deps.nc, route, answer.input.resume, answers, interaction.caller);
  }
  // A result's resource links name URIs as the virtual server exposes them, as a call's result does.
  if (method === "tasks/result") {
    // A task's result is its tool's result: held to the pinned output schema as a call's is.
    mustFollowOutputSchema(deps.validator, route, answer.text, call.era);
    const result = unsealed(parsed(exposeResultUris(answer.text, route.uriPrefix)), home, handle as string);
    // 2025-11-25: tasks/result MUST name its task in `_meta` (the result itself does not). The 1.x
    // SDK upstream adds it; a 2026-07-28 upstream's (read from its tasks/get) and others did not.
    return { ...result, _meta: { ...(isRecord(result._meta) ? result._meta : {}), [RELATED_TASK]: { taskId: handle } } };
  }
  // `tasks/get` and `tasks/cancel` answer a Task (and the questions open to this agent): only a Task's fields, whatever the upstream's era.
  return method === "tasks/update" ? {} : unsealed(taskAnswer(parsed(answer.text)), home, handle as string);
}
