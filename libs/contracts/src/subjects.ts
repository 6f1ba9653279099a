/**
 * Every NATS subject and stream name Manifold uses. Event subjects (captured by the
 * registry stream) and request/reply subjects are disjoint on purpose: a core request
 * on a stream subject would be answered by a JetStream publish ack.
 */
export const RegistryStream = {
  name: "MANIFOLD_REGISTRY",
  subjects: "manifold.evt.>",
} as const;

export const Subjects = {
  upstreamEvents: (upstream: string) => `manifold.evt.upstream.${upstream}`,
  virtualServerEvents: (virtualServer: string) => `manifold.evt.vs.${virtualServer}`,
  consumerEvents: (consumer: string) => `manifold.evt.consumer.${consumer}`,
  identityProviderEvents: (provider: string) => `manifold.evt.idp.${provider}`,
  environmentEvents: (environment: string) => `manifold.evt.env.${environment}`,
  upstreamCall: (upstream: string) => `manifold.rpc.upstream.${upstream}.call`,
  upstreamList: (upstream: string) => `manifold.rpc.upstream.${upstream}.list`,
  /** Other MCP requests to the upstream's owner (`UpstreamRequest`: resources/read, prompts/get, completion/complete, resources/(un)subscribe). */
  upstreamRequest: (upstream: string) => `manifold.rpc.upstream.${upstream}.request`,
  /** `notifications/resources/updated` from an upstream, for the gateways: `<prefix>.<upstream>` (body: the upstream's URI). */
  resourceUpdated: (upstream: string) => `manifold.rpc.resource-updated.${upstream}`,
  /**
   * Where the answers to a held call's server-to-client requests go: one connector replica's
   * subject per pending round (`<replica>.<round>`, unguessable), so whichever gateway replica the
   * agent's answer reaches can hand it to the replica holding the call.
   */
  upstreamResume: (upstream: string, replica: string, round: string) => `manifold.rpc.upstream.${upstream}.resume.${replica}.${round}`,
  /**
   * Requests about a task an upstream created (`tasks/get`, `tasks/result`, `tasks/cancel`, `tasks/update`): to the
   * connector replica whose upstream session created it (an upstream keeps tasks per session).
   */
  upstreamTasks: (upstream: string, replica: string) => `manifold.rpc.upstream.${upstream}.tasks.${replica}`,
  /**
   * Not a queue subject: a gateway dropped a consumer's token for the upstream (`CredentialDropped`),
   * and every connector replica serving it closes the sessions opened with that token.
   */
  credentialDropped: (upstream: string) => `manifold.rpc.upstream.${upstream}.credential-dropped`,
  /**
   * Not a queue subject: a gateway's listen stream that subscribed to the upstream's resources
   * closed (`SubscriptionReleased`), and every connector replica lets go of what it held there.
   */
  subscriptionReleased: (upstream: string) => `manifold.rpc.upstream.${upstream}.subscription-released`,
  /** Not a queue subject: every connector hears it and the one running the call aborts it. */
  callCancel: "manifold.rpc.cancel",
  /**
   * Connectors report an upstream's re-discovered tool list here; a registry replica records what
   * changed. Per upstream, so a connector's identity may report only the upstreams it serves.
   */
  registryDiscovered: (upstream: string) => `manifold.rpc.registry.discovered.${upstream}`,
  /** A session ended (DELETE): every gateway replica drops its copy. */
  sessionClosed: "manifold.gateway.session.closed",
  /**
   * A session's state changed in the directory (`SessionChanged`): a request to each gateway
   * replica its record names as holding a copy, which applies it (log level, resource
   * subscriptions) and then answers, so the change is answered only once every copy has it.
   */
  sessionChanged: (replica: string) => `manifold.gateway.session.changed.${replica}`,
  /**
   * A 2025 agent's answer to a server-to-client request that reached a gateway replica other than
   * the one that asked (`SessionAnswer`): to the asking replica, which the request's id names.
   */
  sessionAnswer: (replica: string) => `manifold.gateway.session.answer.${replica}`,
  /**
   * Heartbeats of calls held by a connector: `<prefix>.<requester>.<token>`, named by the
   * requester in the call's `BusHeader.heartbeat` header. Not the reply subject: a responder may
   * answer a request once (nats-server's response permissions), and an allowance of thousands of
   * answers per request would keep an entry per call in nats-server for an hour.
   */
  callHeartbeats: "manifold.rpc.beat",
  /**
   * The registry appended to its stream, said once JetStream stored it: the event as stored and
   * its sequence (`BusHeader.sequence`), or no body when it was too large to repeat. Followers
   * apply it when it is the next one they need, and otherwise read on from where they are
   * (`readStream`). Only the registry may publish it.
   */
  registryAppended: "manifold.registry.appended",
  /** Last health report of one connector replica for one upstream. */
  upstreamHealth: (upstream: string, replica: string) => `manifold.health.upstream.${upstream}.${replica}`,
} as const;

/** Upstream health reports: a stream of its own, so flapping never grows the registry log. */
export const HealthStream = {
  name: "MANIFOLD_HEALTH",
  subjects: "manifold.health.>",
} as const;

/** Replicas of one upstream's connector share its calls through this queue group. */
export const connectorQueue = (upstream: string) => `manifold-connector-${upstream}`;
export const REGISTRY_QUEUE = "manifold-registry";
/** The environment `/mcp/<virtual-server>` serves: every upstream bound to itself, pins as selected. */
export const DEFAULT_ENVIRONMENT = "default";

/** A header value that arrives as it was sent: no line break, no surrounding spaces (trimmed), no leading quote. */
const PLAIN_HEADER_VALUE = /^(?!["\s])[^\r\n]+(?<!\s)$/;

/**
 * A tool's upstream name as its `BusHeader.tool` value. An upstream names its tools as it likes;
 * a header cannot carry a line break (the call failed as `internal_error`) and loses surrounding
 * spaces (two tools shared one name in the connector), so such a name travels as a JSON string,
 * which a leading quote marks. Made once per route, read with one character test per call.
 */
export const toolHeaderValue = (name: string): string => (PLAIN_HEADER_VALUE.test(name) ? name : JSON.stringify(name));

/** The tool name a `toolHeaderValue` carries. */
export function toolFromHeader(value: string): string {
  if (value.charCodeAt(0) !== 0x22) return value;
  try {
    const name: unknown = JSON.parse(value);
    return typeof name === "string" ? name : value;
  } catch {
    return value;
  }
}

/** Headers carried on bus requests and replies. */
export const BusHeader = {
  /** On `Subjects.registryAppended`: the stream sequence JetStream stored the event at. */
  sequence: "Manifold-Sequence",
  /** Set on a reply that carries an error body instead of a result. */
  errorCode: "Manifold-Error",
  /** Remaining time budget of the caller, so the connector never works past it. */
  timeoutMs: "Manifold-Timeout-Ms",
  virtualServer: "Manifold-Virtual-Server",
  /** The upstream's name of the tool being called (`toolHeaderValue`): its breaker, spans and logs. */
  tool: "Manifold-Tool",
  /** Identifies a call so a cancellation can find it. */
  callId: "Manifold-Call-Id",
  /** Where the connector publishes the call's progress notifications, when the agent asked for them. */
  progressSubject: "Manifold-Progress-Subject",
  /**
   * Where the connector publishes the call's log messages (`LogMessage`), with `logLevel`: the
   * least severe level the caller asked for. Absent: the call's log messages are dropped.
   */
  logSubject: "Manifold-Log-Subject",
  logLevel: "Manifold-Log-Level",
  /** The agent's per-request headers meant for this upstream only (JSON object). Never logged. */
  upstreamHeaders: "Manifold-Upstream-Headers",
  /**
   * With a caller's own upstream token (vault or token exchange): the upstream address the gateway
   * obtained it for. A connector whose upstream is at another address (re-pointed meanwhile, or
   * one of the two lagging) refuses the request (`upstreamMoved`) rather than hand the token over.
   */
  upstreamResource: "Manifold-Upstream-Resource",
  /** On a tool-list request: the registration it is for; a connector still on another one declines. */
  registration: "Manifold-Registration",
  /**
   * On a call: the subject (under `Subjects.callHeartbeats`) on which the requester wants
   * heartbeats while the connector holds it.
   */
  heartbeat: "Manifold-Heartbeat",
  /**
   * On a call: the client capabilities (JSON, `InteractionCapabilities`) its agent declared and
   * its virtual server allows; absent, the upstream's server-to-client requests are refused.
   */
  interactions: "Manifold-Interactions",
  /**
   * On every call, each resume and a resources/subscribe: a digest of the caller, so slots and
   * subscriptions are shared fairly between callers and only the caller resumes.
   */
  caller: "Manifold-Caller",
  /**
   * On a resources/subscribe for a 2026-07-28 listen stream: the stream's id, which its
   * `SubscriptionReleased` names when it closes (absent: a 2025 session's, held for the connection's life).
   */
  subscriber: "Manifold-Subscriber",
  /** Set on a reply that carries an `InputRequiredReply` instead of a result. */
  inputRequired: "Manifold-Input-Required",
  /**
   * On a task-augmented call (its params carry `task`): the reply names the connector replica
   * (`replica`) whose upstream session holds the task, so the task's requests can reach it, and
   * the upstream connection that created it (`connection`, `TaskRequest.connection`): a 2025
   * upstream's task ids are its session's, and a restarted upstream numbers them again.
   */
  task: "Manifold-Task",
  replica: "Manifold-Replica",
  connection: "Manifold-Connection",
  /**
   * On a task-augmented call of a 2025 agent: where (under `TASK_STATUS_PREFIX`) the connector
   * publishes the upstream's `notifications/tasks/status` for the task it creates (params, with
   * the upstream's own task id; the gateway names the task by its handle).
   */
  taskStatus: "Manifold-Task-Status",
} as const;

/**
 * Liveness of a call held by a connector. A connector beats on the call's reply subject
 * once a call has been held `beatMs` and every `beatMs` after (checking every `beatMs / 3`),
 * so a call answered sooner costs no message. A requester that hears nothing for
 * `silenceMs` gives the call up as lost with its connector (checking every `beatMs / 3`):
 * a connector that dies is noticed within `silenceMs + beatMs / 3` (2.5 s).
 */
export const CallLiveness = { beatMs: 750, silenceMs: 2_250 } as const;

/** HTTP headers of Manifold's own, as agents send them (lower case, as Node presents them). */
export const HttpHeader = {
  /** JSON object keyed by upstream name; each value the headers meant for that upstream only. */
  upstreamHeaders: "x-manifold-upstream-headers",
  /** MCP's own request headers (Streamable HTTP): the protocol revision, and from 2026-07-28 the mirrored method and name. */
  protocolVersion: "mcp-protocol-version",
  mcpMethod: "mcp-method",
  mcpName: "mcp-name",
  sessionId: "mcp-session-id",
} as const;

/** The stateless MCP revision the gateway serves beside the 2025 ones (which the 1.x SDK lists). */
export const MODERN_MCP_REVISION = "2026-07-28";
