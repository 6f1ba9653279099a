import { JsonLimits, MAX_INPUT_ROUNDS, ManifoldError, RESULT_TOO_DEEP, jsonTextTooDeep, type Era, type InputRequiredReply, type TaskMethod } from "@manifold/contracts";
import { mayHearTask, requestTask } from "./tasks.js";
import { offeredCapabilities } from "./itemCatalog.js";
import { LegacyServer } from "./paramsCheckedServers.js";
import {
  CallToolRequestSchema,
  CancelTaskRequestSchema,
  GetTaskPayloadRequestSchema,
  GetTaskRequestSchema,
  ListTasksRequestSchema,
  ListToolsRequestSchema,
  SetLevelRequestSchema,
  type CallToolResult,
  type CreateTaskResult,
  type ServerNotification,
  type ServerRequest,
} from "@modelcontextprotocol/sdk/types.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { ToolRoute } from "./catalog.js";
import { endPaused, pausedTool, resumeRound, serveToolCall, viewOf } from "./callPipeline.js";
import type { CallDeps } from "./callDeps.js";
import { allowedInteractions, answerOnStream, callerDigest } from "./interactions.js";
import { z } from "zod";
import { toJsonRpcError } from "./jsonRpc.js";
import { callIdOf, type McpCall } from "./mcpCall.js";
import { relayProgress } from "./toolCalls.js";
import { callOf } from "./callContext.js";
import { relayLogs, sessionLogLevel, setSessionLogLevel } from "./callLogs.js";
import { serveLegacyItems } from "./itemHandlers.js";
import { allItems, releaseUpstreams, sessionHolder } from "./itemRequests.js";
import type { ResourceUpdates } from "./resourceUpdates.js";
import { TaskStatusWatches } from "./taskStatus.js";
import type { SessionChanges, SessionServer } from "./sessions.js";
import { ListNotices } from "./listNotices.js";
import { mustNotPage } from "./onePage.js";

/**
 * Each SDK server otherwise builds its own Ajv instance (for elicitation, which Manifold never
 * sends): one shared instance keeps a session's memory and its initialize cost down.
 */
const sharedValidator = new AjvJsonSchemaValidator();
/** An agent's answer to a relayed request goes to the upstream as it is: the upstream checks its shape. */
const ANY_RESULT = z.looseObject({});

/** A tools/call result as it came over the bus, parsed for an SDK lane of `era` (measured first: it is hostile). */
export function parsedResult(text: string, era: Era): CallToolResult {
  if (jsonTextTooDeep(text, JsonLimits.resultDepth)) {
    throw toJsonRpcError(new ManifoldError("upstream_error", `the result nests deeper than ${JsonLimits.resultDepth} levels`, { reason: RESULT_TOO_DEEP, maxDepth: JsonLimits.resultDepth }), era);
  }
  return JSON.parse(text) as CallToolResult;
}

/**
 * The 1.x SDK server behind one 2025-era session of a virtual server. Each request's call object
 * (principal, access as admitted for this request, pass-through headers, trace) comes from the
 * edge; cancellation and in-flight tracking are the seam's. tools/list is answered from the
 * catalog; tools/call is forwarded over the bus; prompts, resources and completions are served by
 * `serveLegacyItems` when the virtual server exposes any. What the session sets (its log level,
 * its subscriptions) goes through `changes` to its record, and comes back through `apply` on every
 * replica that holds the session.
 */
export function createMcpServer(call: McpCall, deps: CallDeps, version: string, updates: ResourceUpdates, changes: SessionChanges): SessionServer {
  // What the virtual server exposes when the session opens: a session that outlives a new
  // selection of prompts or resources learns of them when it reconnects.
  const items = offeredCapabilities(deps.catalog.view(call.virtualServer, call.environment)?.itemsFor(call.access.deniedItems), deps.health);
  const server = new LegacyServer(
    { name: `manifold-${call.virtualServer}`, version },
    // `logging`: every virtual server relays the log messages of a call to the session that made it.
    // `tasks`: task-augmented tools/call, relayed to upstreams that support them (2025-11-25 tasks).
    { capabilities: { tools: { listChanged: true }, ...items, logging: {}, tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } }, jsonSchemaValidator: sharedValidator },
  );
  const notices = new ListNotices(server);
  const subscriptions = serveLegacyItems(server, deps, items, updates, changes, call, notices);
  /**
   * What this session's agent may be asked now: what it declared at initialize and the virtual
   * server allows at this moment (a call's later rounds are put to it as they come: before, a kind
   * turned off during a call was still asked for the rest of it).
   */
  const allowedNow = (at: McpCall) => allowedInteractions(deps.catalog, at, server.getClientCapabilities() as Record<string, unknown> | undefined);
  // A task's status notifications go out on this session's stream (`taskStatus.ts`), until it closes.
  const statuses = new TaskStatusWatches(deps.nc, (notification) => server.notification(notification), (handle) => mayHearTask(deps, call, handle), (upstream) => deps.observer.taskStatusDropped(upstream));
  const closeItems = server.onclose;
  server.onclose = () => {
    closeItems?.();
    statuses.close();
  };

  // The level applies to this session's calls only (the connector filters by it); it is never forwarded upstream.
  server.setRequestHandler(SetLevelRequestSchema, async (request, extra) => {
    try {
      await changes.change(extra.sessionId, { type: "set-level", level: request.params.level });
    } catch (error) {
      throw toJsonRpcError(error, "legacy");
    }
    return {};
  });

  server.setRequestHandler(ListToolsRequestSchema, (request, extra) => {
    const { call } = callOf(extra.authInfo);
    try {
      mustNotPage(request.params);
    } catch (error) {
      throw toJsonRpcError(error, "legacy");
    }
    return { tools: [...viewOf(deps, call).visible(call.access.denied).tools] };
  });

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const { call } = callOf(extra.authInfo);
    // The tool's upstream names where its connectors may send the call's notifications; a name that reaches no tool is refused below.
    const upstream = viewOf(deps, call).routes.get(request.params.name)?.upstream;
    const token = request.params._meta?.progressToken;
    const progress = token === undefined || upstream === undefined ? undefined : relayProgress(deps.nc, upstream, token, extra.sendNotification);
    const level = sessionLogLevel(server);
    const logs = level === undefined || upstream === undefined ? undefined : relayLogs(deps.nc, upstream, extra.sendNotification);
    const capabilities = allowedNow(call);
    const caller = callerDigest(call.principal);
    const watch = request.params.task !== undefined && upstream !== undefined ? statuses.open(upstream) : undefined;
    let taskCreated = false;
    try {
      let outcome = await serveToolCall(deps, {
        call,
        callId: callIdOf(call, extra.requestId),
        requestId: extra.requestId,
        params: request.params,
        ...(progress ? { progressSubject: progress.getSubject() } : {}),
        ...(logs ? { log: { subject: logs.getSubject(), level: level! } } : {}),
        interactions: capabilities,
        taskStatusSubject: watch?.subject,
      });
      // The upstream asks the agent: each request goes out on this request's stream, the answers back to the held call.
      for (let round = 1; typeof outcome !== "string" && !("created" in outcome); round++) {
        if (round > MAX_INPUT_ROUNDS) throw endPaused(deps, outcome, new ManifoldError("upstream_error", `the upstream asked for input more than ${MAX_INPUT_ROUNDS} times`), "legacy");
        const { input, route, facts } = outcome;
        // What the virtual server allows as each round comes: a kind turned off meanwhile is not asked.
        const answers = await answerOnStream(input, allowedNow(call), (asked) =>
          extra.sendRequest(asked as Parameters<typeof extra.sendRequest>[0], ANY_RESULT, { timeout: route.timeoutMs }),
        );
        outcome = await resumeRound(deps, call, request.params.name, pausedTool(route), input.resume, answers, caller, facts);
      }
      if (typeof outcome === "string") return parsedResult(outcome, "legacy");
      const handle = remember(created, outcome.created);
      if (handle) watch?.created(handle);
      taskCreated = handle !== undefined;
      return outcome.created as CreateTaskResult;
    } finally {
      if (!taskCreated) watch?.dropped();
      progress?.unsubscribe();
      logs?.unsubscribe();
    }
  });

  // Tasks (2025-11-25): each request goes to the upstream session that holds the task; only this caller's handles open.
  const created: string[] = [];
  const task = (method: TaskMethod) => async (request: { params: { taskId: string } }, extra: RequestHandlerExtra<ServerRequest, ServerNotification>) => {
    const { call } = callOf(extra.authInfo);
    // The upstream asks a task's questions on the `tasks/result` stream: they go out on this request's stream.
    const capabilities = method === "tasks/result" ? allowedNow(call) : undefined;
    const interaction = capabilities && {
      capabilities,
      caller: callerDigest(call.principal),
      ask: (input: InputRequiredReply, route: ToolRoute) =>
        answerOnStream(input, allowedNow(call), (asked) => extra.sendRequest(asked as Parameters<typeof extra.sendRequest>[0], ANY_RESULT, { timeout: route.timeoutMs })),
    };
    try {
      return (await requestTask(deps, call, method, request.params.taskId, interaction)) as never;
    } catch (error) {
      throw error instanceof ManifoldError ? toJsonRpcError(error, "legacy") : error;
    }
  };
  server.setRequestHandler(GetTaskRequestSchema, task("tasks/get"));
  server.setRequestHandler(GetTaskPayloadRequestSchema, task("tasks/result"));
  server.setRequestHandler(CancelTaskRequestSchema, task("tasks/cancel"));
  // The tasks this session created (on this replica), newest first, as they are now; one gone
  // upstream is left out. Paged: each task listed is a request upstream, and a page is one counted call.
  server.setRequestHandler(ListTasksRequestSchema, async (request, extra) => {
    const { call } = callOf(extra.authInfo);
    const cursor = request.params?.cursor;
    if (cursor !== undefined && !/^[1-9][0-9]{0,2}$/.test(cursor)) throw toJsonRpcError(new ManifoldError("invalid_arguments", "invalid params: not a cursor this server gave"), "legacy");
    const from = cursor === undefined ? 0 : Number(cursor);
    const newest = created.slice().reverse();
    const page = newest.slice(from, from + TASKS_PER_PAGE);
    const tasks = await Promise.all(page.map((handle) => requestTask(deps, call, "tasks/get", handle).catch(() => undefined)));
    const next = from + TASKS_PER_PAGE < newest.length ? { nextCursor: String(from + TASKS_PER_PAGE) } : {};
    return { tasks: tasks.filter((t) => t !== undefined), ...next } as never;
  });
  return {
    server,
    notices,
    apply: (state) => {
      setSessionLogLevel(server, state.logLevel);
      subscriptions?.sync(state.subscriptions ?? []);
    },
    ended: (sessionId, uris) => {
      const all = allItems(deps, call);
      if (all && uris.length > 0) releaseUpstreams(deps, call, all, uris, sessionHolder(sessionId));
    },
  };
}

/** Sessions list the tasks they created: the newest this many (a task id is all a caller needs to poll it). */
const LISTED_TASKS = 100;
/** Tasks per `tasks/list` page: before, one counted call made up to 100 requests upstream at once. */
const TASKS_PER_PAGE = 10;
function remember(created: string[], result: Record<string, unknown>): string | undefined {
  const id = (result.task as { taskId?: unknown } | undefined)?.taskId;
  if (typeof id !== "string") return undefined;
  created.push(id);
  if (created.length > LISTED_TASKS) created.shift();
  return id;
}
