import { z } from "zod";
import { ServerInfo, UpstreamTool } from "./tool.js";
import { MAX_LISTED_ITEMS, UpstreamPrompt, UpstreamResource, UpstreamResourceTemplate } from "./mcpItems.js";

/** Reply to a discovery `list` request: the tools, and the prompts, resources and templates when the upstream offers them. */
export const ListReply = z.strictObject({
  serverInfo: ServerInfo,
  tools: z.array(UpstreamTool),
  prompts: z.array(UpstreamPrompt).max(MAX_LISTED_ITEMS).optional(),
  resources: z.array(UpstreamResource).max(MAX_LISTED_ITEMS).optional(),
  resourceTemplates: z.array(UpstreamResourceTemplate).max(MAX_LISTED_ITEMS).optional(),
});
/** The MCP revision a connector speaks with an upstream (its era): `2026-07-28`, `2025-11-25`, …; bounded, as it is the upstream's word. */
export const ProtocolVersion = z.string().regex(/^[0-9A-Za-z._-]{1,32}$/);
export type ListReply = z.infer<typeof ListReply>;

/** A connector's report of an upstream's current tools, after a list_changed, a reconnect, or on schedule. */
/** A connector's report of an upstream's tools, for the registration it reached them through. */
export const DiscoveryReport = ListReply.extend({ upstream: z.string(), registration: z.string().optional(), protocolVersion: ProtocolVersion.optional() });
export type DiscoveryReport = z.infer<typeof DiscoveryReport>;

/** Body of a reply whose `Manifold-Error` header is set. */
export const ErrorReply = z.strictObject({ message: z.string(), data: z.unknown().optional() });
export type ErrorReply = z.infer<typeof ErrorReply>;

/** One connector replica's view of an upstream, published when it changes and as a heartbeat. */
export const HealthStatus = z.enum(["up", "degraded", "down"]);
export type HealthStatus = z.infer<typeof HealthStatus>;
export const HealthReport = z.strictObject({
  upstream: z.string(),
  replica: z.string(),
  status: HealthStatus,
  reason: z.string().optional(),
  circuit: z.enum(["closed", "open", "half-open"]),
  /** The revision this replica negotiated with the upstream, while it has a connection. */
  protocolVersion: ProtocolVersion.optional(),
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
