/** The admin API's answers as the console reads them (see the registry's OpenAPI document). */
export interface HealthReport {
  upstream: string;
  replica: string;
  status: "up" | "degraded" | "down";
  reason?: string;
  circuit: "closed" | "open" | "half-open";
  at: string;
}
export interface UpstreamTool {
  name: string;
  hash: string;
  definition: { name: string; description?: string; inputSchema?: unknown; [key: string]: unknown };
  /** Its `x-mcp-header` annotations a 2026-07-28 client may not mirror: agents are shown the tool without them. */
  unpublishedParamHeaders?: { path: string; header?: string; reason: string }[];
}
export interface Upstream {
  name: string;
  description?: string;
  version: number;
  transport: Record<string, unknown> & { type: string };
  options: Record<string, unknown>;
  serverInfo?: { name: string; version: string };
  health?: { status: "up" | "degraded" | "down" | "unknown"; replicas: HealthReport[] };
  tools: UpstreamTool[];
  discovery?: { status: string; error?: { code: string; message: string } };
  /** The MCP revision connectors speak with it (its era), from their health reports. */
  protocolVersion?: string;
  /** Tool-list changes in the last hour, and when a change is held past the hourly budget (drift shows after). */
  listChanges?: { lastHour: number; heldUntil?: string };
  /** The transport's fields recorded as literal secrets (before the registry refused them), shown withheld. */
  literalSecrets?: string[];
}
export interface SelectedTool {
  exposedName: string;
  upstream: string;
  tool: string;
  hash: string;
  definition: UpstreamTool["definition"];
  descriptionOverride?: string;
}
export interface Grant {
  grantId: string;
  subject: { consumer: string } | { group: string };
  deniedTools: ({ upstream: string; tool: string } | string)[];
  deniedPrompts?: { upstream: string; prompt: string }[];
  deniedResources?: ({ upstream: string; uri: string } | { upstream: string; uriTemplate: string })[];
  rateLimitPerMinute?: number;
  environment?: string;
}
export interface Naming {
  policy: "suffix" | "bare" | "prefix";
  prefixes: Record<string, string>;
}
/**
 * A virtual server's view: its summary, relays and audit settings. What it holds (tools, prompts,
 * resources, templates, grants, deprecated aliases) is counted here and paged on its own routes.
 */
export interface VirtualServer extends VirtualServerSummary {
  interactions: { elicitation: boolean; sampling: boolean; roots: boolean };
  audit: { recordValues: boolean; redactFields: string[] };
}
/** A page of what a virtual server holds (`GET /v1/virtual-servers/:name/tools`, `/grants`, `/aliases`, …). */
export type HeldPage<T> = NamedPage<T> & { virtualServer: string; version: number };
/** An old exposed name that still calls the tool now named `current`. */
export interface DeprecatedAlias {
  alias: string;
  current: string;
}
export interface PendingDrift {
  exposedName: string;
  upstream: string;
  tool: string;
  pinnedHash: string;
  currentHash: string | null;
  classification: string;
  reasons: string[];
  diff: { op: string; path: string; value?: unknown; from?: string }[];
}
/** A prompt's, resource's or template's pending drift: decided by `key` (exposed name, or exposed URI). */
export interface PendingItemDrift extends Omit<PendingDrift, "exposedName" | "tool"> {
  kind: "prompt" | "resource" | "resource-template";
  key: string;
  original: string;
}
export interface Consumer {
  name: string;
  description?: string;
  groups: string[];
  /** The identity providers whose tokens may act as this consumer (a PUT replaces them too). */
  identityProviders: string[];
  version: number;
  keys: { keyId: string }[];
}
export interface Environment {
  name: string;
  version: number;
  bindings: Record<string, string>;
}
export interface AuditRecord {
  sequence: number;
  at: string;
  consumer: string;
  virtualServer: string;
  environment: string;
  exposedTool: string;
  tool: string;
  upstream: string;
  durationMs: number;
  outcome: string;
  errorCode?: string;
  traceId?: string;
}
export interface Page<T> {
  items: T[];
  next?: number;
}
export interface HistoryEntry {
  sequence: number;
  type: string;
  at: string;
  actor?: string;
  data: unknown;
}
/** A page of an admin list, in name order: how many match in all, and the name the next page starts after (absent on the last). */
export type NamedPage<T> = { items: T[]; total: number; next?: string };
export interface ItemCounts {
  tools: number;
  prompts: number;
  resources: number;
  resourceTemplates: number;
}
/** An upstream as lists show it: no discovered definitions, only how many. */
export type UpstreamSummary = Omit<Upstream, "tools" | "discovery"> & { counts: ItemCounts };
/** A virtual server as lists show it: counts, never its pins or grants. */
export interface VirtualServerSummary {
  name: string;
  description?: string;
  version: number;
  driftPolicy: "pinned" | "auto-compatible";
  naming: Naming;
  counts: ItemCounts & { grants: number; deprecatedAliases: number };
  environments: Record<string, ItemCounts>;
}
/** A discovered tool a search found (`GET /v1/upstream-tools`). */
export interface FoundTool {
  upstream: string;
  tool: string;
  description: string;
}
