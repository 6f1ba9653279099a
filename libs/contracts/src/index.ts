export { ResourceName, UpstreamToolName, ExposedToolName, EXPOSED_NAME, EXPOSED_NAME_MAX } from "./names.js";
export { RegistryStream, HealthStream, Subjects, BusHeader, CallLiveness, HttpHeader, MODERN_MCP_REVISION, connectorQueue, REGISTRY_QUEUE, DEFAULT_ENVIRONMENT, toolHeaderValue, toolFromHeader } from "./subjects.js";
export {
  UpstreamTransport,
  StdioTransport,
  StreamableHttpTransport,
  SseTransport,
  UpstreamOptions,
  UpstreamProtocol,
  CredentialRef,
  HeaderName,
  DEFAULT_PASSTHROUGH_HEADERS,
  UpstreamOAuth,
  UpstreamTokenExchange,
  UpstreamAuth,
} from "./upstream.js";
export type { UpstreamTransportInput } from "./upstream.js";
export { credentialFingerprint, CredentialDropped } from "./credentialDropped.js";
export { SubscriptionReleased } from "./subscriptionReleased.js";
export { CREDENTIAL_NAME, urlCredentialProblem, urlCredentialValues, urlWithoutCredentials } from "./literalSecrets.js";
export { shownIdentityProvider, shownTransport, WITHHELD_SECRET, type ShownTransport } from "./recordedSecrets.js";
export { isReservedHeader } from "./reservedHeaders.js";
export { CredentialPolicyEnv, credentialPolicy, credentialRefProblem, credentialRefIssues, envAllowed, fileAllowed } from "./credentialPolicy.js";
export type { CredentialPolicy } from "./credentialPolicy.js";
export { StdioPolicyEnv, stdioPolicy, stdioIssues, stdioEnvAllowed } from "./stdioPolicy.js";
export { stdioWarnings } from "./stdioWarnings.js";
export type { StdioCommand, StdioEntry, StdioPolicy } from "./stdioPolicy.js";
export { UpstreamTool, PinnedToolDefinition, DefinitionHash, ServerInfo } from "./tool.js";
export * from "./mcpItems.js";
export * from "./events.js";
export {
  ToolRef,
  RegisterUpstreamBody,
  CreateVirtualServerBody,
  SelectToolsBody,
  DeselectToolsBody,
  SelectPromptsBody,
  SelectResourcesBody,
  DeselectPromptsBody,
  DeselectResourcesBody,
  DriftPolicyBody,
  InteractionsBody,
  RenameToolBody,
  DescribeToolBody,
  UpdateUpstreamBody,
  UpdateVirtualServerBody,
  EnvironmentBody,
  PromoteBody,
  CommandType,
} from "./commands.js";
export type { DriftReview, RegistryCommand } from "./commands.js";
export { ListReply, ProtocolVersion, DiscoveryReport, ErrorReply, HealthReport, HealthStatus, ProgressMessage, MAX_PROGRESS_BYTES, NOTIFICATION_BYTES_PER_CALL, notificationBudget, McpLogLevel, LogMessage, logLevelReaches, InteractionMethod, InteractionCapabilities, MAX_INPUT_ROUNDS, InputRequest, mayAsk, InputRequiredReply, ResumeRequest, TaskMethod, TaskRequest, TaskMode, TASK_EXTENSION, RELATED_TASK } from "./bus.js";
export { MIN_POLL_INTERVAL_MS, boundedTask } from "./task.js";
export { BUS_RETRY_AFTER_MS, ErrorCode, ManifoldError, invalidRequestState, isErrorCode, jsonRpcCodeOf, CONSENT_ERROR_MODERN, retryAfterOf, upstreamMoved, withRetryHint, type Era } from "./errors.js";
export { RegistryLimits } from "./registryLimits.js";
export { SessionRecord, SessionState, SessionId, SessionChanged, SessionAnswer, GatewayReplicaId, MAX_SESSION_SUBSCRIPTIONS, MAX_SESSION_SUBSCRIPTION_CHARS, MAX_SESSION_HOLDERS } from "./sessionRecord.js";
export { parseEnv, configOrExit, ConfigError, LogLevel, Port, Milliseconds, BusEnv, StreamReplicas } from "./config.js";
export type { BusConfig } from "./config.js";
export { BusRole, BUS_ROLES, KvBucket, KV_BUCKETS, MAX_OAUTH_FLOW_TTL_S, MAX_SESSION_IDLE_MS, RATE_WINDOW_MS, PROGRESS_PREFIX, LOG_PREFIX, TASK_STATUS_PREFIX, busPermissions, inboxPrefix, upstreamScoped } from "./busPermissions.js";
export type { BusPermissions, PermissionOptions } from "./busPermissions.js";
export {
  KeyId,
  API_KEY_PATTERN,
  StoredKey,
  GroupName,
  GrantSubject,
  Grant,
  IdentityProvider,
  IdentityProviderBody,
  CreateConsumerBody,
  UpdateConsumerBody,
  GrantBody,
  ToolIdentity,
  DeniedTool,
  DeniedPrompt,
  DeniedResource,
} from "./access.js";
export type { ResolvedGrant } from "./access.js";
export { AuditStream, auditSubject, AuditRecord, AuditQuery, AuditOutcome, AuditSettings } from "./audit.js";
export { cutText } from "./shownText.js";
export { AdminBodyLimits, AgentBodyLimits, JsonLimits, RESULT_TOO_DEEP, INPUT_REQUIRED, INVALID_RESULT, STREAM_ENDED, CONNECTION_CLOSED, isRecord, jsonSpaceEnd, jsonStringEnd, jsonTextTooDeep, jsonValueEnd, jsonValueTooDeep, holdsNonFiniteNumber, measureBody, nonFiniteNumberPath, JSON_TOO_DEEP, unreadableNumbersOrDepth, type BodyLimits } from "./boundedJson.js";
export { hostPolicy, refusal, requestRefusal, type HostPolicy } from "./hostPolicy.js";
export { answersCrossOrigin, crossOrigin, crossOriginHook, type CrossOriginAnswer, type CrossOriginRules } from "./crossOrigin.js";
export { paramArgument, paramHeaderMismatch, paramHeadersOf, publishedInputSchema, unpublishedParamHeaders, type ParamHeader, type UnpublishedParamHeader } from "./paramHeaders.js";
export { processSecrets, resolveSecrets } from "./secretResolution.js";
export type { SecretSource, ScopedSecrets, SecretUse } from "./secretResolution.js";
export { limitConnections } from "./connectionLimit.js";
export { listenerTransport, readListenerTls, renewListenerTls } from "./listenerTls.js";
export type { ListenerTls } from "./listenerTls.js";
export { METRICS_LISTENER_OPTIONS, METRICS_MAX_CONNECTIONS, metricsListenerOptions } from "./metricsListener.js";
export type { ConnectionLimitOptions, ConnectionShed } from "./connectionLimit.js";
