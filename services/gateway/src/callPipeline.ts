import { ManifoldError, TASK_EXTENSION, TaskMode, invalidRequestState, type Era, type InputRequiredReply, type InteractionCapabilities, type McpLogLevel, isRecord } from "@manifold/contracts";
import { toolKey } from "@manifold/domain";
import { SpanKind, traced } from "@manifold/telemetry";
import type { CallDeps } from "./callDeps.js";
import { beginCall, noteFailure, requestedToolName, type CallFacts } from "./callObserver.js";
import { isDenied, type ToolRoute, type VirtualServerView } from "./catalog.js";
import { toJsonRpcError, unknownTool, type JsonRpcError } from "./jsonRpc.js";
import { notServed } from "./auth/gatekeeper.js";
import { callAttributes } from "./spanAttributes.js";
import type { McpCall } from "./mcpCall.js";
import { requestToolCall, resumeToolCall, type CallAnswer, type NotifySubjects } from "./toolCalls.js";
import { sealCreatedTask, taskSupportOf } from "./tasks.js";
import { consentResult } from "./vault/consentAnswer.js";
import { exposeResultUris } from "./resultUris.js";
import { resumeSettled } from "./settledResume.js";
import { invalidArgumentsResult } from "./argumentValidator.js";
import { mustFollowOutputSchema } from "./outputSchemaCheck.js";
import { callerDigest } from "./interactions.js";


/** The view of the call's virtual server, or the error the agent gets when it is no longer served. */
export function viewOf(deps: CallDeps, call: McpCall): VirtualServerView {
  const view = deps.catalog.view(call.virtualServer, call.environment);
  if (!view) throw toJsonRpcError(notServed(call.virtualServer, call.environment), call.era);
  return view;
}

/** The credentials a call carries to its upstream: the agent's pass-through, or the caller's own upstream token. */
const upstreamHeadersOf = (deps: CallDeps, call: McpCall, upstream: string) => deps.delegated.headersFor(upstream, call, call.upstreamHeaders?.get(upstream));

/** One tools/call of an admitted request: the request's facts, and what this call adds. */
export interface ToolCall {
  call: McpCall;
  /** What a cancellation names (see `callIdOf`). */
  callId: string;
  requestId: string | number;
  /** As received: the shape is checked here. */
  params: { name?: unknown; arguments?: unknown; task?: unknown };
  progressSubject?: string;
  /** Where its log messages go, at which level (absent: the caller asked for none). */
  log?: { subject: string; level: McpLogLevel } | undefined;
  /** What its agent may be asked during the call (absent: nothing, the call never pauses). */
  interactions?: InteractionCapabilities | undefined;
  /** A 2026-07-28 agent declared the tasks extension: a tool that requires or offers tasks is called as one. */
  tasksDeclared?: boolean | undefined;
  /** A 2025 agent's task call: where its task's status notifications go (a subject under `TASK_STATUS_PREFIX`). */
  taskStatusSubject?: string | undefined;
}

/**
 * A held call's pause: the round of requests for its agent, the route its answers follow, and the
 * call's facts, not recorded yet: a 2025 call goes on in the same request and is recorded when it
 * ends; a 2026-07-28 request records them as paused (`input_required`) and its retry on its own.
 */
export interface Round {
  readonly input: InputRequiredReply;
  readonly route: ToolRoute;
  readonly facts: CallFacts;
}
/** A task-augmented call's answer: the upstream's `CreateTaskResult` (2025-11-25 shape), its task id sealed for the caller. */
export interface Created {
  readonly created: Record<string, unknown>;
}
/** What serving a call yields: the connector's result text, a round for the agent, or a task. */
export type CallOutcome = string | Round | Created;


/** Refuses tools/call params without a string `name` or with non-object `arguments`, as `invalid_arguments`. */
export function mustBeToolCallParams(params: unknown): asserts params is { name: string; arguments?: Record<string, unknown>; task?: unknown } {
  const { name, arguments: args } = (isRecord(params) ? params : {}) as { name?: unknown; arguments?: unknown };
  if (typeof name !== "string" || (args !== undefined && !isRecord(args))) {
    throw new ManifoldError("invalid_arguments", "invalid params: tools/call needs a string 'name' and an object 'arguments'");
  }
}

/**
 * Whether arguments the pinned schema refuses are a tool execution error (a result with `isError`,
 * which the model is shown to correct its call) rather than -32602: from 2025-11-25 on (SEP-1303:
 * "Input validation errors"); 2025-06-18 and older list "Invalid arguments" among protocol errors.
 * A 2025 task call stays -32602: its answer is a task or an error, never a tool result.
 */
const invalidArgumentsAreResults = (call: McpCall, params: { task?: unknown }): boolean =>
  call.era === "modern" || (call.revision !== undefined && call.revision >= SEP_1303_REVISION && params.task === undefined);
const SEP_1303_REVISION = "2025-11-25";

/**
 * One tools/call, whichever lane received it: route by exposed name (a denied tool is as
 * invisible as an unselected one), validate the arguments against the pin, forward over the
 * bus inside the call's server span, and record it once, after the caller has answered. Resolves with the connector's result
 * text; rejects with a JSON-RPC error.
 */
export async function serveToolCall(deps: CallDeps, toolCall: ToolCall): Promise<CallOutcome> {
  const { call, callId, requestId } = toolCall;
  const exposed = toolCall.params.name;
  const facts = beginCall(call.virtualServer, call.environment, call.principal, requestedToolName(exposed));
  let paused = false;
  /** Releases the call's place among the caller's running calls. */
  let running: (() => void) | undefined;
  try {
    const params = toolCall.params;
    mustBeToolCallParams(params);
    const { name, arguments: args } = params;
    // Denials are by tool identity: an alias or deprecated alias of a denied tool is denied too.
    const route = deps.catalog.view(call.virtualServer, call.environment)?.routes.get(name);
    if (!route || isDenied(route, call.access.denied)) throw unknownTool(call.virtualServer, name);
    facts.tool = route.tool;
    facts.upstream = route.upstream;
    facts.argumentsValue = args;
    try {
      deps.validator.check(route.hash, route.inputSchema, name, args);
    } catch (error) {
      if (!invalidArgumentsAreResults(call, params)) throw error;
      // Answered, not served: recorded as refused (`invalid_arguments`), as the -32602 is.
      noteFailure(facts, error, call.era);
      return invalidArgumentsResult(error as ManifoldError);
    }
    // A task: a 2025 agent's own `task` (asked for), or a 2026-07-28 agent (which has no `task`
    // parameter) that declared the extension, calling a tool whose pin requires tasks (asked for)
    // or may answer with one (offered: the upstream decides; a 2025 upstream answers at once).
    const support = taskSupportOf(route);
    const mode =
      call.era === "legacy" ? (params.task !== undefined ? TaskMode.asked : undefined)
      : toolCall.tasksDeclared !== true || support === "forbidden" ? undefined
      : support === "required" ? TaskMode.asked
      : TaskMode.offered;
    const asTask = mode !== undefined;
    // 2025-11-25: the pin says how a tool is called; the other way is -32601 (servers SHOULD, and MUST for `required`), not the upstream's to refuse.
    if (call.era === "legacy" && support !== "optional" && asTask !== (support === "required")) {
      throw new ManifoldError("task_mode_unsupported", asTask ? `tool '${name}' does not run as a task` : `tool '${name}' runs only as a task: call it with 'task'`);
    }
    // SEP-2663: a tool that can only answer with a task, to a request that cannot take one.
    if (call.era === "modern" && !asTask && support === "required") {
      throw new ManifoldError("missing_client_capability", `tool '${name}' runs as a task: declare the ${TASK_EXTENSION} extension`, { requiredCapabilities: { extensions: { [TASK_EXTENSION]: {} } } });
    }
    const sent = call.era === "legacy" || !asTask ? toolCall.params : { ...toolCall.params, task: {} };
    let upstreamHeaders: Record<string, string> | undefined;
    try {
      const headers = upstreamHeadersOf(deps, call, route.upstream);
      upstreamHeaders = headers instanceof Promise ? await headers : headers;
    } catch (error) {
      // A 2026-07-28 client that takes URL elicitation is asked for consent in a result.
      const consent = consentResult(call, error);
      if (consent === undefined) throw error;
      // The call waits for the agent's user, and its connect link is not recorded: whoever confirms
      // it first binds their upstream account to this consumer, so it is the consumer's alone.
      facts.paused = true;
      return consent;
    }
    const attributes = () => callAttributes(call, name, requestId, route.upstream, route.tool);
    running = deps.inFlight.running(call.principal, callId);
    return await traced(
      `tools/call ${name}`,
      SpanKind.SERVER,
      attributes,
      async (span) => {
        const context = span.spanContext();
        if (context.traceFlags) facts.traceId = context.traceId;
        let answer: CallAnswer;
        // A try, not `.catch`: no second promise and closure per call.
        try {
          answer = await requestToolCall(deps.nc, route, sent as { name: string }, {
            callId,
            upstreamHeaders,
            progressSubject: toolCall.progressSubject,
            log: toolCall.log,
            caller: callerDigest(call.principal),
            // A task's questions reach its agent through the task (`tasks/result`, `tasks/get`), not the call.
            interactions: asTask ? undefined : toolCall.interactions,
            task: mode,
            taskStatusSubject: toolCall.taskStatusSubject,
          });
        } catch (error) {
          throw noteFailure(facts, error, call.era);
        }
        facts.argumentBytes = answer.sentBytes;
        facts.resultBytes = answer.receivedBytes;
        // Calls admitted together answer together: each answer, too, waits for room to be written.
        deps.inFlight.mustHaveRoom(call.principal);
        if (answer.input) {
          paused = true;
          return { input: answer.input, route, facts };
        }
        const created = asTask ? sealCreatedTask(deps, call, route, answer) : undefined;
        // Held to the pinned output schema (both lanes, both eras); a task's result is, when it is read.
        if (!created) mustFollowOutputSchema(deps.validator, route, answer.text, call.era);
        facts.resultText = answer.text;
        return created ? { created } : exposeResultUris(answer.text, route.uriPrefix);
      },
      call.parent,
    );
  } catch (error) {
    throw facts.errorCode ? error : noteFailure(facts, error, call.era);
  } finally {
    running?.();
    if (!paused) deps.observer.recordSoon(facts);
  }
}

/** The concrete tool a round was paused on (upstream and original name): what its answers resume. */
export const pausedTool = (route: ToolRoute): string => toolKey(route.upstream, route.tool);

/**
 * The agent's answers to a round, to the held call: the route is looked up again by exposed
 * name, and the caller's access taken again, so a tool denied or deselected since the round
 * began (or a consumer deleted since) is not resumed. `pausedOn` is the `pausedTool` of the round's
 * route: the name must still reach that tool. Resolves like a call,
 * and records `facts` (the round's, or a retry's own) unless the call pauses again.
 */
export async function resumeRound(deps: CallDeps, call: McpCall, exposed: string, pausedOn: string, subject: string, inputResponses: Record<string, unknown>, caller: string, facts: CallFacts, held: { callId?: string | undefined; notify?: NotifySubjects } = {}): Promise<CallOutcome> {
  const { callId, notify } = held;
  let paused = false;
  let running: (() => void) | undefined;
  try {
    // A resumed call is the caller's running one again, under the id its connector holds it by: a
    // consumer's deletion cancels it, and it counts among the caller's calls in flight.
    if (callId !== undefined) running = deps.inFlight.running(call.principal, callId);
    // The caller's access now, not the request's: a 2025 call paused on its stream is resumed by
    // answers that come after it, when its tool may be denied or its consumer gone.
    const access = deps.accessNow(call);
    const route = deps.catalog.view(call.virtualServer, call.environment)?.routes.get(exposed);
    if (!route || !access || isDenied(route, access.denied)) throw unknownTool(call.virtualServer, exposed);
    // The name may reach another tool now (renamed, re-pointed, bound elsewhere): the held call is
    // still the old tool's, and the grant just checked is not its. Before, a name given to a granted
    // tool resumed the held call of a tool denied meanwhile, and the upstream acted on the answers.
    if (pausedTool(route) !== pausedOn) {
      throw call.era === "modern" ? invalidRequestState(`'${exposed}' names another tool than the one this requestState's call was made on: send the call again without it`) : unknownTool(call.virtualServer, exposed);
    }
    facts.tool = route.tool;
    facts.upstream = route.upstream;
    // A 2026-07-28 round outlives a nats-server restart on its connector: its retry waits for the resubscription.
    const resume = call.era === "modern" ? resumeSettled : resumeToolCall;
    const answer: CallAnswer = await resume(deps.nc, route, subject, inputResponses, caller, notify).catch((error: unknown) => {
      // Nobody holds the round: a 2026-07-28 agent presented a spent state (answered already, or its
      // call ended) and must start the call again; a 2025 call's connector is gone (the error as it is).
      throw call.era === "modern" && error instanceof ManifoldError && error.data?.reason === "no_connector"
        ? invalidRequestState("the round this requestState names is over (answered already, or its call ended): send the call again without it")
        : error;
    });
    facts.resultBytes = answer.receivedBytes;
    // Resumed calls answer together as first calls do: each answer waits for room among the caller's unread bytes.
    deps.inFlight.mustHaveRoom(call.principal);
    if (answer.input) {
      paused = true;
      return { input: answer.input, route, facts };
    }
    mustFollowOutputSchema(deps.validator, route, answer.text, call.era);
    facts.resultText = answer.text;
    return exposeResultUris(answer.text, route.uriPrefix);
  } catch (error) {
    throw facts.errorCode ? error : noteFailure(facts, error, call.era);
  } finally {
    running?.();
    if (!paused) deps.observer.recordSoon(facts);
  }
}

/** A paused call that ends without being resumed (too many rounds): recorded as failed; returns the agent's error. */
export function endPaused(deps: CallDeps, round: Round, error: unknown, era: Era): JsonRpcError {
  const rpc = noteFailure(round.facts, error, era);
  deps.observer.recordSoon(round.facts);
  return rpc;
}
