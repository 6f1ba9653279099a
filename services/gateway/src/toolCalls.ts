import { BusHeader, InputRequiredReply, ManifoldError, PROGRESS_PREFIX, ProgressMessage, Subjects, notificationBudget, upstreamScoped, type InteractionCapabilities, type McpLogLevel, type TaskMode } from "@manifold/contracts";
import { OutgoingHeaders, busRequest, jsonOrNothing, type Msg, type NatsConnection } from "@manifold/bus";
import type { CallToolRequest } from "@modelcontextprotocol/sdk/types.js";
import { createInbox } from "@nats-io/transport-node";
import type { ToolRoute } from "./catalog.js";
import { obtainedFor } from "./vault/delegatedCredentials.js";


/** The connector answers first when the upstream times out; this margin covers the bus round trip. */
export const BUS_MARGIN_MS = 250;

export interface CallOptions {
  /** Lets a cancellation find the call on whichever connector replica runs it. */
  callId: string;
  /** The agent's pass-through headers for this call's upstream, if any. */
  upstreamHeaders?: Record<string, string> | undefined;
  progressSubject?: string | undefined;
  /** Where the call's log messages go, and the least severe level its caller wants (absent: none). */
  log?: { subject: string; level: McpLogLevel } | undefined;
  /**
   * Who calls (`callerDigest`), on every call: the connector shares an upstream's slots fairly
   * between callers, and only this caller may answer a round of its call.
   */
  caller: string;
  /** What the agent may be asked during the call: only for calls that may interact. */
  interactions?: InteractionCapabilities | undefined;
  /** How the call asks for a task (absent: it takes none), and where the task's status notifications go. */
  task?: TaskMode | undefined;
  taskStatusSubject?: string | undefined;
}

/** What a call answered: the result's JSON text, or a round of requests for its agent (the call is held). */
export interface CallAnswer {
  text: string;
  /** For a task-augmented call: the connector replica whose upstream session holds the task, and the session's connection that created it. */
  replica?: string | undefined;
  connection?: string | undefined;
  sentBytes: number;
  receivedBytes: number;
  input?: InputRequiredReply;
}

/** The connector's answer: a round of requests for the agent when marked so (its bytes are hostile), else the result text. */
export function answerOf(reply: Msg, sentBytes: number): CallAnswer {
  const text = reply.string();
  if (!reply.headers?.get(BusHeader.inputRequired)) {
    const replica = reply.headers?.get(BusHeader.replica) || undefined;
    // Only a task call's answer names a replica: a plain call's looks up nothing more.
    return { text, sentBytes, receivedBytes: reply.data.length, replica, connection: replica && (reply.headers!.get(BusHeader.connection) || undefined) };
  }
  let input: InputRequiredReply;
  try {
    input = InputRequiredReply.parse(JSON.parse(text));
  } catch {
    throw new ManifoldError("upstream_error", "the upstream's request for the caller's input is malformed");
  }
  return { text: "", sentBytes, receivedBytes: reply.data.length, input };
}

/** Keys of `_meta` that belong to the agent's hop (2026-07-28 envelope, W3C trace context), not to the upstream's. */
const AGENT_HOP_KEYS: ReadonlySet<string> = new Set([
  "io.modelcontextprotocol/protocolVersion",
  "io.modelcontextprotocol/clientInfo",
  "io.modelcontextprotocol/clientCapabilities",
  "io.modelcontextprotocol/logLevel",
  "traceparent",
  "tracestate",
  "baggage",
]);
/** The keys every 2026-07-28 call carries are looked up first: `startsWith` compared them character by character (~1,000 instructions a key, callgrind). */
const isAgentHopKey = (key: string) => AGENT_HOP_KEYS.has(key) || key.startsWith("io.modelcontextprotocol/");

/**
 * The call's `_meta` as the upstream may see it: the agent's envelope (protocol revision,
 * capabilities, client identity) and trace context describe the agent's hop only; the connector
 * speaks for itself upstream and carries the trace in the bus headers. Undefined (left out of
 * the JSON) when nothing else is there.
 */
function hopMeta(meta: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (meta === undefined) return undefined;
  let kept: Record<string, unknown> | undefined;
  for (const key of Object.keys(meta)) if (!isAgentHopKey(key)) (kept ??= {})[key] = meta[key];
  return kept;
}

/**
 * The call's params as its upstream gets them: under the upstream's own tool name, the keys both
 * SDKs' schemas keep (`arguments`, `task`, `_meta`), and `_meta` only when something of it is left
 * for the upstream. Whatever else a request carried, the SDK lane dropped while the fast path passed
 * it on: one lane now, whichever serves. Keys are set only when present: a key set to undefined would
 * do for JSON but sends JSON.stringify down its slow path (3× the call's whole encoding, measured).
 */
export function upstreamParams(params: CallToolRequest["params"], tool: string): object {
  const out: Record<string, unknown> = { name: tool };
  if (params.arguments !== undefined) out.arguments = params.arguments;
  if (params.task !== undefined) out.task = params.task;
  const kept = hopMeta(params._meta);
  if (kept !== undefined) out._meta = kept;
  return out;
}

/**
 * The hot path: one bus request to the connector of the tool's upstream, under the
 * upstream's original tool name. The result comes back as the connector's JSON text and
 * is handed on without being parsed again.
 */
export async function requestToolCall(
  nc: NatsConnection,
  route: ToolRoute,
  params: CallToolRequest["params"],
  options: CallOptions,
): Promise<CallAnswer> {
  // Encoded as the bus sends them, with no record of them in between.
  const headers = new OutgoingHeaders();
  headers.append(BusHeader.callId, options.callId);
  headers.append(BusHeader.tool, route.toolHeader);
  headers.append(BusHeader.caller, options.caller);
  if (options.interactions) headers.append(BusHeader.interactions, JSON.stringify(options.interactions));
  if (options.upstreamHeaders) {
    headers.append(BusHeader.upstreamHeaders, JSON.stringify(options.upstreamHeaders));
    const resource = obtainedFor(options.upstreamHeaders);
    if (resource) headers.append(BusHeader.upstreamResource, resource);
  }
  // A task-augmented call: the connector says which replica and upstream connection hold the task.
  if (options.task) {
    headers.append(BusHeader.task, options.task);
    if (options.taskStatusSubject) headers.append(BusHeader.taskStatus, options.taskStatusSubject);
  }
  if (options.progressSubject) headers.append(BusHeader.progressSubject, options.progressSubject);
  if (options.log) {
    headers.append(BusHeader.logSubject, options.log.subject);
    headers.append(BusHeader.logLevel, options.log.level);
  }
  // Encoded once here: the bus sends these bytes, and their length is the size the audit records.
  // (Buffer.from, not TextEncoder: it slices a shared pool instead of allocating, ~8× faster here.)
  const payload = Buffer.from(JSON.stringify(upstreamParams(params, route.tool)));
  let reply: Msg;
  try {
    reply = await busRequest(nc, route.subject, payload, {
      timeoutMs: route.timeoutMs,
      busTimeoutMs: route.timeoutMs + BUS_MARGIN_MS,
      target: `upstream '${route.upstream}'`,
      headers,
      // A connector that dies holding the call is noticed within seconds, not at the call's timeout.
      heartbeats: route.upstream,
    });
  } catch (error) {
    // A connector that is only cut off from the bus would go on with the call: it is told to stop.
    if (error instanceof ManifoldError && error.data?.reason === "connector_lost") cancelToolCall(nc, options.callId);
    throw error;
  }
  return answerOf(reply, payload.length);
}

/** Where a 2026-07-28 retry reads its call's progress and log messages from here on (the first request's are no longer read). */
export interface NotifySubjects {
  readonly progress?: string | undefined;
  readonly log?: string | undefined;
}

/**
 * The agent's answers to a round, to the connector replica holding the call (any gateway replica
 * may send them: the subject came from the connector; the caller digest must match its call's).
 * Resolves like the call: its result, or the next round.
 */
export async function resumeToolCall(nc: NatsConnection, route: ToolRoute, subject: string, inputResponses: Record<string, unknown>, caller: string, notify?: NotifySubjects): Promise<CallAnswer> {
  const payload = Buffer.from(JSON.stringify({ inputResponses }));
  const headers: Record<string, string> = { [BusHeader.caller]: caller };
  if (notify?.progress) headers[BusHeader.progressSubject] = notify.progress;
  if (notify?.log) headers[BusHeader.logSubject] = notify.log;
  const reply = await busRequest(nc, subject, payload, {
    timeoutMs: route.timeoutMs,
    busTimeoutMs: route.timeoutMs + BUS_MARGIN_MS,
    target: `upstream '${route.upstream}'`,
    headers,
    heartbeats: route.upstream,
  });
  return answerOf(reply, payload.length);
}

/**
 * Broadcasts a cancellation to every connector; the one running the call aborts it. Best
 * effort: it also runs from abort listeners, where a throw (a closed connection) would end
 * the process, and a bus that cannot carry it cannot carry the call's answer either.
 */
export function cancelToolCall(nc: NatsConnection, callId: string): void {
  try {
    nc.publish(Subjects.callCancel, callId);
  } catch {
    // Nothing to cancel through: see above.
  }
}

/**
 * Relays the connector's progress messages for one call as MCP notifications carrying the
 * agent's own token. A callback subscription runs in arrival order, so every progress
 * message published before the reply is relayed before the result.
 */
export function relayProgress(nc: NatsConnection, upstream: string, progressToken: string | number, send: (n: { method: "notifications/progress"; params: ProgressMessage & { progressToken: string | number } }) => Promise<void>) {
  const budget = notificationBudget();
  // Each notification carries the agent's token besides what the connector sent.
  const tokenBytes = typeof progressToken === "string" ? progressToken.length : 16;
  // Not an inbox: connectors may publish progress here, never into the gateway's replies; and only the
  // connectors of the call's upstream (`upstreamScoped`).
  return nc.subscribe(createInbox(upstreamScoped(PROGRESS_PREFIX, upstream)), {
    callback: (err, msg) => {
      const update = err || !budget.take(msg.data.length + tokenBytes) ? undefined : ProgressMessage.safeParse(jsonOrNothing(msg.string()));
      if (!update?.success) return;
      void send({ method: "notifications/progress", params: { ...update.data, progressToken } }).catch(() => undefined);
    },
  });
}
