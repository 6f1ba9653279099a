import { z } from "zod";
import { ResourceName } from "./names.js";
import { ServerInfo, UpstreamTool } from "./tool.js";
import { MAX_LISTED_ITEMS, UpstreamPrompt, UpstreamResource, UpstreamResourceTemplate } from "./mcpItems.js";

/**
 * The most an upstream's server info may take as JSON, as a client's info and capabilities at the
 * gateway: it is recorded with each change of its lists, which every node replays (padded to
 * 900 KB, twelve changes an hour kept ~10.8 MB an hour of one upstream's in the registry's log).
 */
export const MAX_SERVER_INFO_BYTES = 16 * 1024;
const ReportedServerInfo = ServerInfo.refine((info) => JSON.stringify(info).length <= MAX_SERVER_INFO_BYTES, { message: `server info over ${MAX_SERVER_INFO_BYTES} bytes as JSON` });

/** Reply to a discovery `list` request: the tools, and the prompts, resources and templates when the upstream offers them. */
export const ListReply = z.strictObject({
  serverInfo: ReportedServerInfo,
  // Checked before any tool is read: one report of 19,000 tools held the registry 580–900 ms before it was refused.
  tools: z.array(UpstreamTool).max(MAX_LISTED_ITEMS),
  prompts: z.array(UpstreamPrompt).max(MAX_LISTED_ITEMS).optional(),
  resources: z.array(UpstreamResource).max(MAX_LISTED_ITEMS).optional(),
  resourceTemplates: z.array(UpstreamResourceTemplate).max(MAX_LISTED_ITEMS).optional(),
});
/** The MCP revision a connector speaks with an upstream (its era): `2026-07-28`, `2025-11-25`, …; bounded, as it is the upstream's word. */
export const ProtocolVersion = z.string().regex(/^[0-9A-Za-z._-]{1,32}$/);
export type ListReply = z.infer<typeof ListReply>;

/** A connector's report of an upstream's current tools, after a list_changed, a reconnect, or on schedule. */
/** A connector's report of an upstream's tools, for the registration it reached them through. */
export const DiscoveryReport = ListReply.extend({ upstream: ResourceName, registration: z.string().optional(), protocolVersion: ProtocolVersion.optional() });
export type DiscoveryReport = z.infer<typeof DiscoveryReport>;

/** Body of a reply whose `Manifold-Error` header is set. */
export const ErrorReply = z.strictObject({ message: z.string(), data: z.unknown().optional() });
export type ErrorReply = z.infer<typeof ErrorReply>;

/** One connector replica's view of an upstream, published when it changes and as a heartbeat. */
export const HealthStatus = z.enum(["up", "degraded", "down"]);
export type HealthStatus = z.infer<typeof HealthStatus>;
/** A connector replica's name (`CONNECTOR_REPLICA_ID`): one subject token. */
export const ReplicaId = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);
export const HealthReport = z.strictObject({
  upstream: ResourceName,
  replica: ReplicaId,
  status: HealthStatus,
  /** Shown to admins as the connector said it (a connector cuts its own to 500 characters). */
  reason: z.string().max(1_024).optional(),
  circuit: z.enum(["closed", "open", "half-open"]),
  /** The revision this replica negotiated with the upstream, while it has a connection. */
  protocolVersion: ProtocolVersion.optional(),
  /** Whether the upstream's session on this replica declared `resources.subscribe`, while it has a connection. */
  resourceSubscribe: z.boolean().optional(),
  /**
   * This replica's last report for the upstream, as it stops serving it (shutdown, the upstream
   * deregistered): what it held (a task, a round) is gone now, not away (`HealthBoard.away`).
   */
  stopped: z.literal(true).optional(),
  at: z.iso.datetime(),
});
export type HealthReport = z.infer<typeof HealthReport>;

/** A progress notification relayed from the connector to the gateway (token excluded: the gateway owns it). */
export const ProgressMessage = z.looseObject({
  progress: z.number(),
  total: z.number().optional(),
  message: z.string().optional(),
});
export type ProgressMessage = z.infer<typeof ProgressMessage>;
/** The largest progress notification a connector relays: a number and a line of text, not a payload. */
export const MAX_PROGRESS_BYTES = 16 * 1024;

/** What one call's progress or log notifications may add up to (their bus payloads), per kind. */
export const NOTIFICATION_BYTES_PER_CALL = 256 * 1024;

/**
 * The notifications one call may relay: `NOTIFICATION_BYTES_PER_CALL` of them, then the rest are
 * dropped. The connector spends it before the bus (an upstream's flood of progress, 47 MB/s in
 * one call, crossed the bus to be dropped at the gateway and slowed other tenants' calls 40-fold),
 * the gateway again before its agent (the SDKs queue what they send whether or not the client
 * reads, so an unbounded stream was memory held for as long as the client kept its connection).
 */
export function notificationBudget(bytes = NOTIFICATION_BYTES_PER_CALL): { take(size: number): boolean } {
  let left = bytes;
  return { take: (size) => (left -= size) >= 0 };
}

/** MCP's log levels (RFC 5424 severities), least severe first. */
export const McpLogLevel = z.enum(["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]);
export type McpLogLevel = z.infer<typeof McpLogLevel>;
/** Whether a message at `level` reaches a caller that asked for `minimum` and above. */
export const logLevelReaches = (level: McpLogLevel, minimum: McpLogLevel): boolean => McpLogLevel.options.indexOf(level) >= McpLogLevel.options.indexOf(minimum);
/** A log message (`notifications/message` params) relayed from the connector to the gateway that made the call. */
export const LogMessage = z.looseObject({
  level: McpLogLevel,
  logger: z.string().max(256).optional(),
  data: z.unknown(),
});
export type LogMessage = z.infer<typeof LogMessage>;

/** The server-to-client requests Manifold relays (2025: requests on the call's stream; 2026-07-28: `inputRequests`). */
export const InteractionMethod = z.enum(["elicitation/create", "sampling/createMessage", "roots/list"]);
export type InteractionMethod = z.infer<typeof InteractionMethod>;
/** What an agent may be asked during a call: client capabilities as MCP declares them, only these three. */
/** Rounds of input one call may take before it is given up (an upstream that never stops asking): gateway and connector alike. */
export const MAX_INPUT_ROUNDS = 8;

export const InteractionCapabilities = z.strictObject({
  elicitation: z.looseObject({ form: z.looseObject({}).optional(), url: z.looseObject({}).optional() }).optional(),
  sampling: z.looseObject({ tools: z.looseObject({}).optional(), context: z.looseObject({}).optional() }).optional(),
  roots: z.looseObject({}).optional(),
});
export type InteractionCapabilities = z.infer<typeof InteractionCapabilities>;

/** At most this many requests in one round; keys as short as MCP's examples need. */
const InputKey = z.string().min(1).max(128);
export const InputRequest = z.strictObject({ method: InteractionMethod, params: z.looseObject({}).optional() });
export type InputRequest = z.infer<typeof InputRequest>;

/** Whether an agent allowed `capabilities` may be sent this request: the gateway filters by it and the connector refuses by it. */
export function mayAsk(capabilities: InteractionCapabilities | undefined, request: InputRequest): boolean {
  if (!capabilities) return false;
  switch (request.method) {
    case "elicitation/create": {
      const elicitation = capabilities.elicitation;
      if (!elicitation) return false;
      // A declaration without modes means form only (client/elicitation, "Capabilities").
      const mode = request.params?.mode ?? "form";
      return mode === "url" ? elicitation.url !== undefined : elicitation.form !== undefined || elicitation.url === undefined;
    }
    case "sampling/createMessage": {
      const sampling = capabilities.sampling;
      if (!sampling) return false;
      // client/sampling: tool-enabled sampling MUST NOT go to a client without `sampling.tools`, and
      // `includeContext` other than "none" SHOULD NOT without `sampling.context`.
      const params = request.params ?? {};
      if ((params.tools !== undefined || params.toolChoice !== undefined) && !sampling.tools) return false;
      return params.includeContext === undefined || params.includeContext === "none" || sampling.context !== undefined;
    }
    case "roots/list":
      return capabilities.roots !== undefined;
  }
}
/**
 * A held call's reply when its upstream wants the agent's input: the requests, and the subject
 * (`Subjects.upstreamResume`) where the answers go. The call stays held on the connector replica
 * until a `ResumeRequest` arrives there or the call's budget runs out. Sizes: one bus message.
 */
export const InputRequiredReply = z.strictObject({
  inputRequests: z.record(InputKey, InputRequest).refine((r) => Object.keys(r).length > 0 && Object.keys(r).length <= 16, "1 to 16 requests"),
  resume: z.string().max(256),
});
export type InputRequiredReply = z.infer<typeof InputRequiredReply>;
/** The agent's answers, by the keys of the round's requests (an unanswered key is refused upstream). */
export const ResumeRequest = z.strictObject({ inputResponses: z.record(InputKey, z.looseObject({})) });
export type ResumeRequest = z.infer<typeof ResumeRequest>;

/**
 * The task methods a gateway routes to the connector replica that holds the task. Replies are in
 * the 2025-11-25 shapes whatever the upstream's era (the connector maps a 2026-07-28 upstream's
 * tasks extension onto them): `tasks/get` and `tasks/cancel` a `Task` (`ttl`, `pollInterval`),
 * `tasks/result` the call's result; `tasks/update` (2026-07-28 agents' answers) an empty object.
 * A `tasks/get` that carries `Manifold-Interactions` also names the task's open questions the
 * agent may be asked (`inputRequests`, 2026-07-28 agents), like the extension's `InputRequiredTask`.
 */
export const TaskMethod = z.enum(["tasks/get", "tasks/result", "tasks/cancel", "tasks/update"]);
export type TaskMethod = z.infer<typeof TaskMethod>;
/**
 * A request about one task, by the upstream's own task id (`Subjects.upstreamTasks`) and the
 * upstream connection that created it (`BusHeader.connection`): on any other connection that id
 * is another task, or none, and the answer is `task_not_found`. `inputResponses` only on `tasks/update`.
 */
export const TaskRequest = z.strictObject({
  method: TaskMethod,
  taskId: z.string().min(1).max(512),
  connection: z.string().min(1).max(64),
  inputResponses: z.record(InputKey, z.looseObject({})).refine((r) => Object.keys(r).length <= 16, "at most 16 responses").optional(),
});
export type TaskRequest = z.infer<typeof TaskRequest>;
/**
 * How a tools/call asks for a task (`BusHeader.task`): `asked`, the call carries `task` and the
 * upstream is asked for one (a 2025 agent's own `task`, or a tool whose pin requires one);
 * `offered`, the agent takes a task if the server decides to make one (a 2026-07-28 agent that
 * declared the extension, calling a tool that may answer with one): a 2025 upstream is called
 * without `task` (synchronously), a 2026-07-28 upstream is told the agent declared the extension.
 */
export const TaskMode = { asked: "asked", offered: "offered" } as const;
/** The 2026-07-28 tasks extension (SEP-2663): agents and upstreams declare it in their capabilities' `extensions`. */
export const TASK_EXTENSION = "io.modelcontextprotocol/tasks";
/** Where a 2025-11-25 message (a result, a notification, a server's request) names the task it belongs to. */
export const RELATED_TASK = "io.modelcontextprotocol/related-task";
export type TaskMode = (typeof TaskMode)[keyof typeof TaskMode];
