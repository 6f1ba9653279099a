import { ManifoldError, TASK_EXTENSION, TaskMode, type ListReply, type TaskRequest, type UpstreamRequestMethod } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { LOG_LEVEL_META_KEY, type Progress, type Tool } from "@modelcontextprotocol/client";
import { z } from "zod";
import type { Cancellation } from "./cancellation.js";
import type { DirectCallOptions } from "./directCall.js";
import type { DirectCaller } from "./directCaller.js";
import type { Interaction } from "./heldCall.js";
import type { CallLog } from "./callLog.js";
import { paramHeadersOf } from "@manifold/contracts";
import { neutralResult } from "./modernRequest.js";
import { legacyCallAnswer, modernTaskRequest } from "./modernTasks.js";
import { isSessionNotFound } from "./sessionExpiry.js";
import type { OpenedTransport } from "./transports.js";
import type { EchoForm } from "./withheldValues.js";
import { UpstreamConnection, type Connection, type SessionOptions, type SessionState } from "./upstreamConnection.js";
import { listAllItems, listAllTools } from "./upstreamListing.js";
import { dropsSession, mapUpstreamError, mustNotNestTooDeep, saysUnreachable } from "./upstreamErrors.js";
import { callResultOf } from "./callResultShape.js";
import { TaskOwners } from "./taskOwners.js";
import { RunningCalls } from "./runningCalls.js";

export type { SessionOptions, SessionState } from "./upstreamConnection.js";

export interface CallOptions {
  /** The time this attempt may take. */
  timeoutMs: number;
  /** The call's whole budget: progress may extend an attempt up to it, never past it. */
  budget: number;
  cancellation?: Cancellation | undefined;
  /** When set, the upstream is asked for progress and each notification is handed here. */
  onprogress?: ((progress: Progress) => void) | undefined;
  /** When set, the upstream's server-to-client requests during the call are relayed to its agent. */
  interaction?: Interaction | undefined;
  /** When set, the upstream's log messages during the call are relayed to its caller. */
  log?: CallLog | undefined;
  /** Who makes the call, as the gateway vouches: what the upstream does not attribute never goes to another caller. */
  caller?: string | undefined;
  /** How the call asks for a task (`TaskMode`); absent: it takes none. */
  task?: TaskMode | undefined;
  /** The most a direct call's answer may hold (a bus message's size). */
  maxResultBytes?: number | undefined;
  /** What a direct call's rounds wait for their answers under (`DirectCallOptions.idle`). */
  idle?: DirectCallOptions["idle"];
  /** When the call's whole budget ends (`DirectCallOptions.deadline`). */
  deadline?: number | undefined;
}

/** The answer to a task of a connection that has closed (the gateway's to a task the caller does not hold): it went with its connection. */
export const taskGone = (): ManifoldError => new ManifoldError("task_not_found", "no such task");

/** Results passed on as the upstream wrote them (the gateway checks their size and depth, and maps task ids). */
const ANY_RESULT = z.looseObject({});

/** Most resources one modern connection follows (each holds a listen stream). */
const MAX_RESOURCE_STREAMS = 1_000;
/** Most resources a 2025 session follows through one replica (the upstream keeps each subscription). */
const MAX_SUBSCRIBED_URIS = 10_000;

/**
 * The connector's one seam to an upstream: connect (probing the era), list tools, call a tool
 * with progress and cancellation, state, era, close. It uses the 2.x SDK client, which probes
 * with `server/discover` and falls back to `initialize`, for both eras; tools/call on Streamable
 * HTTP goes through the direct caller, an implementation detail of the hot path.
 *
 * A 2025-era upstream holds a session: it is reconnected with exponential backoff when it drops,
 * and renewed at once when the upstream forgets it. A 2026-07-28 upstream holds none: a failed
 * call loses nothing and the next one simply goes out again; list changes are followed with
 * `subscriptions/listen`, re-opened when the stream drops. Keeping the connection is
 * `UpstreamConnection`'s; this class runs requests over it and reads what their failures mean.
 */
export class UpstreamSession {
  readonly name: string;
  readonly #upstream: UpstreamConnection;
  readonly #paramHeaders: SessionOptions["paramHeaders"];
  /** What runs on this session, and where the upstream's unattributed questions and log messages go. */
  readonly #calls: RunningCalls;
  /** Called when the upstream's tool list may have changed (a notification, or a re-opened listen stream). */
  toolsChanged: (() => void) | undefined;
  /** Called with the URI of a subscribed resource the upstream says was updated. */
  resourceUpdated: ((uri: string) => void) | undefined;
  /** Called with the params of the upstream's `notifications/tasks/status` (2025-11-25; the upstream's own task id) and the connection they came on. */
  taskStatus: ((params: unknown, connection: string) => void) | undefined;

  constructor(name: string, openTransport: (inPlaceProbe: boolean) => Promise<OpenedTransport>, logger: Logger, options: SessionOptions) {
    this.name = name;
    this.#paramHeaders = options.paramHeaders;
    this.#calls = new RunningCalls(logger);
    this.#upstream = new UpstreamConnection(name, openTransport, logger, options, {
      toolsChanged: () => this.toolsChanged?.(),
      resourceUpdated: (uri) => this.resourceUpdated?.(uri),
      taskStatus: (params, connection) => this.taskStatus?.(params, connection),
      log: (params) => this.#calls.log(params),
      relay: (request, id) => this.#calls.relay(request, id, this.modern),
    });
  }

  get state(): SessionState {
    return this.#upstream.state;
  }

  /** Whether the upstream declared `resources.subscribe` (either era), while connected. */
  get resourceSubscribe(): boolean | undefined {
    const conn = this.#upstream.current;
    return conn && conn.client.getServerCapabilities()?.resources?.subscribe === true;
  }

  /** The negotiated protocol revision (the era), while connected. */
  get protocolVersion(): string | undefined {
    return this.#upstream.current?.protocolVersion;
  }

  /**
   * The credential values this session's connections have sent the upstream, the connection a
   * call ran on included after it closed or was replaced: answers are cleaned of them (`redactResult`).
   */
  get credentials(): readonly EchoForm[] {
    return this.#upstream.credentials;
  }

  /** The most resources this session follows at once (`SubscriptionShares`): a 2026-07-28 upstream takes a listen stream for each. */
  get resourceLimit(): number {
    return this.modern ? MAX_RESOURCE_STREAMS : MAX_SUBSCRIBED_URIS;
  }

  /** Whether the upstream speaks 2026-07-28 (while connected). */
  get modern(): boolean {
    return this.#upstream.current?.modern ?? false;
  }

  /** Why the last connection attempt failed, for health reports (never a value it quoted). */
  get lastError(): string | undefined {
    return this.#upstream.lastError;
  }

  start(): void {
    this.#upstream.start();
  }

  /** A connection is open now: a call need not wait for one (`ready`). */
  get connected(): boolean {
    return this.#upstream.current !== undefined;
  }

  /** The open connection's id (`Connection.id`), if there is one. */
  get connectionId(): string | undefined {
    return this.#upstream.current?.id;
  }

  /**
   * Asks the upstream for a `ping` on the open connection, bounded by `timeoutMs` (`UpstreamLiveness`);
   * false when there is no connection to ask on (the session's state says why). 2026-07-28 has no
   * `ping` (the SDK refuses to send one): a modern upstream is asked `server/discover`, which holds
   * no state and is as cheap.
   */
  async ping(timeoutMs: number): Promise<boolean> {
    const conn = this.#upstream.current;
    if (!conn) return false;
    try {
      await (conn.modern ? conn.client.discover({ timeout: timeoutMs }) : conn.client.ping({ timeout: timeoutMs }));
    } catch (error) {
      // The ping is the connector's own: answered 502 or not reached, it says the upstream cannot be
      // reached, where one caller's request so answered said nothing of the others' (`mayBeOneRequests`).
      if (!conn.modern && saysUnreachable(mapUpstreamError(error, "", timeoutMs))) this.#upstream.invalidate(conn, error);
      throw error;
    }
    return true;
  }

  /** Waits up to `timeoutMs` for a (re)connection; fails with the reason when there is none. */
  async ready(timeoutMs: number): Promise<void> {
    await this.#upstream.connection(timeoutMs);
  }

  /** `paramsJson` is the serialized `params` of tools/call, `tool` its name; resolves with the serialized result. A call that may answer with a task is `callForTask`'s. */
  callTool(tool: string, paramsJson: string, options: CallOptions): Promise<string> {
    return this.#attempt(options.timeoutMs, options.cancellation, (conn) => {
      if (conn.direct) return conn.modern ? conn.direct.callTool(tool, paramsJson, options) : this.#callDirect(conn.direct, tool, paramsJson, options);
      return this.#callOnClient(conn, paramsJson, options);
    });
  }

  /**
   * `callTool` for a call that may answer with a task (`options.task`): the answer, and the
   * connection it ran on (the last one, when the upstream forgot the session meanwhile), which
   * holds the task: task requests name it (`TaskRequest.connection`).
   */
  callForTask(tool: string, paramsJson: string, options: CallOptions): Promise<{ text: string; connection: string }> {
    return this.#attempt(options.timeoutMs, options.cancellation, async (conn) => ({ text: await this.#callForTask(conn, tool, paramsJson, options), connection: conn.id }));
  }

  /**
   * A call that may answer with a task, in the upstream's era. 2025: the call carries `task` when
   * one is asked for, and none when the agent only offered to take one (the upstream answers at
   * once). 2026-07-28: no `task` parameter (the revision has none); the request declares the
   * tasks extension and the upstream decides; its `CreateTaskResult` goes on in the 2025 shape.
   * Over stdio the 2.4.0 SDK client refuses a `resultType: "task"` answer, so only a Streamable
   * HTTP upstream's tasks are relayed (a stdio one's tools are not listed as offering tasks, and a
   * call that only offered to take one goes out as a plain call).
   */
  async #callForTask(conn: Connection, tool: string, paramsJson: string, options: CallOptions): Promise<string> {
    const keepTask = !conn.modern && options.task === TaskMode.asked;
    let params = paramsJson;
    if (!keepTask) {
      const { task: _task, ...rest } = JSON.parse(paramsJson) as Record<string, unknown>;
      params = JSON.stringify(rest);
    }
    if (!conn.modern) return conn.direct ? this.#callDirect(conn.direct, tool, params, options) : this.#callOnClient(conn, params, options);
    if (!conn.direct) {
      if (options.task === TaskMode.offered) return this.#callOnClient(conn, params, options);
      throw new ManifoldError("upstream_error", `upstream '${this.name}' speaks 2026-07-28 over stdio: its tasks are not relayed (the SDK client refuses task results there)`);
    }
    // A 2026-07-28 upstream's direct calls share no channel: nothing of theirs arrives unattributed.
    const owners = (conn.taskOwners ??= new TaskOwners());
    return legacyCallAnswer(await conn.direct.callTool(tool, params, { ...options, tasks: true }), (taskId) => owners.created(taskId, options.caller));
  }

  /**
   * A 2025 call through the direct caller, which reads its questions and log messages on the call's
   * own stream. The upstream may also send them on the session's GET stream, which does not say for
   * which call (server-everything's roots/list): relayed like stdio's (`RunningCalls.relay`, `RunningCalls.log`).
   */
  #callDirect(direct: DirectCaller, tool: string, paramsJson: string, options: CallOptions): Promise<string> {
    const { interaction, log, caller } = options;
    return this.#calls.whileRunning({ caller, interaction, log }, () => direct.callTool(tool, paramsJson, options, this.#calls.questions));
  }

  /** tools/call through the SDK client (stdio and SSE upstreams). */
  #callOnClient(conn: Connection, paramsJson: string, options: CallOptions): Promise<string> {
    const { interaction, log, caller } = options;
    return this.#calls.whileRunning({ caller, interaction, log }, () => this.#requestOnClient(conn, paramsJson, options));
  }

  async #requestOnClient(conn: Connection, paramsJson: string, options: CallOptions): Promise<string> {
    const { cancellation, onprogress, log } = options;
    const params = JSON.parse(paramsJson) as { name: string; task?: unknown; _meta?: Record<string, unknown> };
    // 2026-07-28: an upstream sends log messages only for a request that names a level.
    if (log && conn.modern) params._meta = { ...params._meta, [LOG_LEVEL_META_KEY]: log.level };
    const sdkOptions = {
      timeout: options.timeoutMs,
      ...(cancellation ? { signal: cancellation.signal } : {}),
      ...(onprogress ? { onprogress, resetTimeoutOnProgress: true, maxTotalTimeout: options.budget } : {}),
    };
    const request = { method: "tools/call" as const, params };
    // A task-augmented call answers with a task (CreateTaskResult), not a tool result: passed on as it
    // is. A 2025 tool result is read as written and judged by `mustBeCallResult`, as the direct
    // caller's is (`callResultOf`): the SDK's schema patched some (no `content` became `content: []`).
    const asWritten = params.task !== undefined || !conn.modern;
    const result = await (asWritten ? conn.client.request(request, ANY_RESULT, sdkOptions) : conn.client.request(request, sdkOptions));
    mustNotNestTooDeep(result, `upstream '${this.name}'`, "result");
    const answered = params.task === undefined ? callResultOf(result, `upstream '${this.name}'`) : result;
    return JSON.stringify(conn.modern ? neutralResult(answered) : answered);
  }

  /**
   * A request about one of the upstream's tasks, on this session: an upstream keeps tasks per
   * session. A 2025 upstream's answer goes on as it wrote it (the gateway maps ids); a 2026-07-28
   * upstream's tasks extension is mapped onto the same methods and shapes (`modernTasks.ts`).
   * `tasks/update` exists only there (a 2025 upstream's questions are answered on `tasks/result`).
   * Only on the connection that created the task: on another (the upstream restarted, or forgot
   * the session) its id may be another caller's new task. Before, an old handle opened that task.
   */
  taskRequest(request: TaskRequest, timeoutMs: number, interaction?: Interaction, caller?: string): Promise<string> {
    return this.#attempt(timeoutMs, undefined, async ({ id, client, modern, taskOwners }) => {
      if (id !== request.connection) throw taskGone();
      if (modern) {
        if (!taskOwners?.owns(request.taskId, caller)) throw taskGone();
        const answer = await modernTaskRequest(client, request, timeoutMs, interaction);
        mustNotNestTooDeep(answer, `upstream '${this.name}'`, "result");
        return JSON.stringify(neutralResult(this.#taskAnswer(request, answer)));
      }
      if (request.method === "tasks/update") throw new ManifoldError("invalid_request", "a 2025 upstream's task takes its answers on tasks/result");
      // A 2025 upstream sends a task's questions on the `tasks/result` stream: relayed like a call's.
      const task = request.method === "tasks/result" ? request.taskId : undefined;
      return this.#calls.whileRunning({ caller, interaction, task }, async () => {
        const result = await client.request({ method: request.method, params: { taskId: request.taskId } }, ANY_RESULT, { timeout: timeoutMs });
        mustNotNestTooDeep(result, `upstream '${this.name}'`, "result");
        return JSON.stringify(this.#taskAnswer(request, result));
      });
    });
  }

  /**
   * A task's `tasks/result` is its tools/call result (the only requests the connector makes tasks
   * of), judged as a call's where it is first read (`callResultOf`): before, a malformed one, a
   * value the SDKs refuse or strangers inside its blocks went to the agent as the upstream wrote them.
   */
  #taskAnswer(request: TaskRequest, answer: Record<string, unknown>): Record<string, unknown> {
    return request.method === "tasks/result" ? callResultOf(answer, `upstream '${this.name}'`) : answer;
  }

  /** The upstream's full tool list (all pages) and server info. */
  listTools(timeoutMs: number, maxBytes: number): Promise<ListReply> {
    return this.#attempt(timeoutMs, undefined, async ({ client, modern, direct }) => {
      const tools = await listAllTools(client, this.name, timeoutMs, maxBytes);
      if (modern) this.#learnParamHeaders(tools);
      // 2026-07-28 has no per-tool task support: an upstream that declares the tasks extension may
      // answer any call with a task, which is what 2025's `taskSupport: "optional"` says (and pins).
      // Only where its tasks can be relayed: over Streamable HTTP (the direct caller).
      const tasks = modern && direct !== undefined && client.getServerCapabilities()?.extensions?.[TASK_EXTENSION] !== undefined;
      const listed = tasks ? tools.map((tool) => ({ ...tool, execution: { taskSupport: "optional" } })) : tools;
      return { serverInfo: client.getServerVersion() ?? { name: this.name, version: "unknown" }, tools: listed } as ListReply;
    });
  }

  /**
   * The upstream's prompts, resources and resource templates (all pages, at most
   * `MAX_LISTED_ITEMS` and `maxBytes` of each), each kind only when the upstream's capabilities offer it.
   */
  listItems(timeoutMs: number, maxBytes: number): Promise<Pick<ListReply, "prompts" | "resources" | "resourceTemplates">> {
    return this.#attempt(timeoutMs, undefined, ({ client }) => listAllItems(client, this.name, timeoutMs, maxBytes));
  }

  /**
   * One of the other requests a virtual server forwards (`UpstreamRequestMethod`); resolves with the
   * serialized result. It runs on the session as a call does, under its caller (`caller`: the
   * gateway's `Manifold-Caller`; absent for the connector's own re-subscription), asking and
   * logging nothing: a question or log message the upstream sends meanwhile is not attributed to
   * another call running beside it. Before, one consumer's `prompts/get` asked the question its
   * upstream raised of another consumer's running call, whose answer came back in the prompt (both
   * eras; attacker run, `test/e2e/itemRequestIsolation.e2e.spec.ts`).
   */
  request(method: UpstreamRequestMethod, params: Record<string, unknown>, timeoutMs: number, caller?: string): Promise<string> {
    return this.#attempt(timeoutMs, undefined, (conn) => this.#calls.whileRunning({ caller }, () => this.#requestItem(conn, method, params, timeoutMs)));
  }

  async #requestItem(conn: Connection, method: UpstreamRequestMethod, params: Record<string, unknown>, timeoutMs: number): Promise<string> {
    const { client } = conn;
    const options = { timeout: timeoutMs };
    // 2026-07-28 has no resources/subscribe: a listen stream for the URI replaces it.
    if (conn.modern && method === "resources/subscribe") return this.#followResource(conn, params.uri, timeoutMs);
    // The SDK checks each result against its schema; Manifold checks the params it forwards at the gateway.
    const p = params as never;
    const result =
      method === "resources/read" ? await client.readResource(p, { ...options, cacheMode: "bypass" })
      : method === "prompts/get" ? await client.getPrompt(p, options)
      : method === "completion/complete" ? await client.complete(p, options)
      : method === "resources/subscribe" ? await client.subscribeResource(p, options)
      : await client.unsubscribeResource(p, options);
    mustNotNestTooDeep(result, `upstream '${this.name}'`, "result");
    return JSON.stringify(conn.modern ? neutralResult(result) : result);
  }

  /**
   * Stops following a resource no caller holds any more, so the upstream stops sending its updates
   * and holds nothing for it: a 2026-07-28 upstream's listen stream is closed, a 2025 one is sent
   * resources/unsubscribe. Best effort: a failure leaves only updates nobody passes on.
   */
  async release(uri: string, timeoutMs: number): Promise<void> {
    const conn = this.#upstream.current;
    if (!conn) return;
    if (conn.modern) {
      const stream = conn.resourceStreams?.get(uri);
      conn.resourceStreams?.delete(uri);
      await stream?.close().catch(() => undefined);
      return;
    }
    await conn.client.unsubscribeResource({ uri }, { timeout: timeoutMs }).catch(() => undefined);
  }

  /** Opens (once per URI and connection) a listen stream for a modern upstream's resource; its updates reach `resourceUpdated`. */
  async #followResource(conn: Connection, uri: unknown, timeoutMs: number): Promise<string> {
    if (typeof uri !== "string") throw new ManifoldError("invalid_arguments", "invalid params: 'uri' must be a string");
    const streams = (conn.resourceStreams ??= new Map());
    const pending = (conn.pendingResourceStreams ??= new Map());
    // Two subscribes of one URI at once share one listen: two would leave one open, held by nobody.
    const opening = pending.get(uri);
    if (opening) return opening;
    if (streams.has(uri)) return "{}";
    if (streams.size + pending.size >= MAX_RESOURCE_STREAMS) throw new ManifoldError("upstream_error", `upstream '${this.name}' already has ${MAX_RESOURCE_STREAMS} resource subscriptions here`);
    const open = (async () => {
      const subscription = await conn.client.listen({ resourceSubscriptions: [uri] }, { timeout: timeoutMs });
      streams.set(uri, subscription);
      // A dropped stream is forgotten (only this one: another may have replaced it): the next subscribe opens another.
      void subscription.closed.then(() => {
        if (streams.get(uri) === subscription) streams.delete(uri);
      });
      return "{}";
    })();
    pending.set(uri, open);
    try {
      return await open;
    } finally {
      pending.delete(uri);
    }
  }

  /** Only tools that declare header parameters get an entry: a call to any other tool looks up nothing more. */
  #learnParamHeaders(tools: Tool[]): void {
    const known = this.#paramHeaders;
    if (!known) return;
    known.clear();
    for (const tool of tools) {
      const declared = paramHeadersOf(tool.inputSchema);
      if (declared.length > 0) known.set(tool.name, declared);
    }
  }

  /** `terminate`: a 2025 Streamable HTTP session is ended at the upstream too (DELETE), within a second. */
  close(options: { terminate?: boolean } = {}): Promise<void> {
    return this.#upstream.close(options);
  }

  /**
   * Runs `request` on the current connection. A 2025-era upstream that forgot the session gets
   * it once more on a new one; a session lost at the transport level is dropped, so the next
   * call reconnects. A 2026-07-28 connection has no session: it is never dropped for a failed call.
   */
  async #attempt<T>(timeoutMs: number, cancellation: Cancellation | undefined, request: (conn: Connection) => Promise<T>): Promise<T> {
    // Connected (nearly always): no wait, and no promise for it on the hot path.
    const conn = this.#upstream.current ?? (await this.#upstream.connection(timeoutMs));
    try {
      return await request(conn);
    } catch (error) {
      // A call cancelled by its caller says nothing about the session.
      if (cancellation?.cancelled) throw error;
      if (!conn.modern && isSessionNotFound(error)) {
        this.#upstream.renew(conn);
        return request(await this.#upstream.connection(timeoutMs));
      }
      if (!conn.modern && dropsSession(mapUpstreamError(error, "", timeoutMs))) this.#upstream.invalidate(conn, error);
      throw error;
    }
  }
}
