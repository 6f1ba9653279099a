import { z } from "zod";
import { ExposedToolName, ResourceName, UpstreamToolName } from "./names.js";
import { DefinitionHash, PinnedToolDefinition, ServerInfo } from "./tool.js";
import { RecordedUpstreamOptions, RecordedUpstreamTransport } from "./upstream.js";
import { Grant, GroupName, IdentityProvider, KeyId, StoredKey } from "./access.js";
import { AuditSettings } from "./audit.js";
import {
  DiscoveredPrompt,
  DiscoveredResource,
  DiscoveredResourceTemplate,
  PinnedPrompt,
  PinnedResource,
  PinnedResourceTemplate,
  ResourceUri,
  SelectedPrompt,
  SelectedResource,
  SelectedResourceTemplate,
} from "./mcpItems.js";

export const EventType = {
  upstreamRegistered: "upstream.registered",
  upstreamToolsDiscovered: "upstream.tools-discovered",
  upstreamRemoved: "upstream.removed",
  upstreamUpdated: "upstream.updated",
  virtualServerCreated: "virtual-server.created",
  virtualServerToolsSelected: "virtual-server.tools-selected",
  virtualServerToolsDeselected: "virtual-server.tools-deselected",
  virtualServerDeleted: "virtual-server.deleted",
  virtualServerUpdated: "virtual-server.updated",
  virtualServerAccessGranted: "virtual-server.access-granted",
  virtualServerAccessRevoked: "virtual-server.access-revoked",
  virtualServerAuditConfigured: "virtual-server.audit-configured",
  virtualServerToolRepinned: "virtual-server.tool-repinned",
  /** The `auto-compatible` policy's adoption of an upstream's compatible changes: many re-pins, one event. */
  virtualServerToolsRepinned: "virtual-server.tools-repinned",
  virtualServerDriftRejected: "virtual-server.drift-rejected",
  virtualServerDriftPolicySet: "virtual-server.drift-policy-set",
  virtualServerInteractionsSet: "virtual-server.interactions-set",
  virtualServerToolRenamed: "virtual-server.tool-renamed",
  virtualServerToolDescribed: "virtual-server.tool-described",
  virtualServerPromoted: "virtual-server.promoted",
  virtualServerItemsSelected: "virtual-server.items-selected",
  virtualServerItemsDeselected: "virtual-server.items-deselected",
  virtualServerItemRepinned: "virtual-server.item-repinned",
  virtualServerItemsRepinned: "virtual-server.items-repinned",
  virtualServerItemDriftRejected: "virtual-server.item-drift-rejected",
  environmentBindingsSet: "environment.bindings-set",
  environmentDeleted: "environment.deleted",
  consumerCreated: "consumer.created",
  consumerUpdated: "consumer.updated",
  consumerKeyIssued: "consumer.key-issued",
  consumerKeyRevoked: "consumer.key-revoked",
  /** An admin revoked the consumer's own authorization at an upstream (docs/identity.md): gateways drop and revoke its vault tokens. */
  consumerConnectionRevoked: "consumer.connection-revoked",
  consumerDeleted: "consumer.deleted",
  identityProviderRegistered: "identity-provider.registered",
  identityProviderRemoved: "identity-provider.removed",
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** Bumped when an event's data changes shape; old versions stay readable. */
export const EVENT_SCHEMA_VERSION = 1;

export const DiscoveredTool = z.strictObject({ hash: DefinitionHash, definition: PinnedToolDefinition });
export type DiscoveredTool = z.infer<typeof DiscoveredTool>;

/** A tool chosen for a virtual server, with the definition pinned at selection time. */
export const SelectedTool = z.strictObject({
  exposedName: ExposedToolName,
  upstream: ResourceName,
  tool: UpstreamToolName,
  hash: DefinitionHash,
  definition: PinnedToolDefinition,
  /** Served instead of the pinned description; drift is still measured on the pinned definition. */
  descriptionOverride: z.string().optional(),
});

/**
 * How exposed names are made: `suffix` (original + `_` + 6 deterministic characters), `bare`
 * (the original name; collisions are refused), `prefix` (upstream alias + `_` + original,
 * clipped to 64 with a deterministic suffix). `prefixes` gives short aliases per upstream.
 */
export const Naming = z.strictObject({
  policy: z.enum(["suffix", "bare", "prefix"]),
  prefixes: z.record(ResourceName, z.string().regex(/^[A-Za-z0-9]{1,16}$/)).default({}),
});
export type Naming = z.infer<typeof Naming>;
export type SelectedTool = z.infer<typeof SelectedTool>;

/** Prompts, resources and resource templates a virtual server selects (each absent when none). */
const SelectedItems = {
  prompts: z.array(SelectedPrompt).optional(),
  resources: z.array(SelectedResource).optional(),
  resourceTemplates: z.array(SelectedResourceTemplate).optional(),
};
/** What a drift decision on a prompt, resource or template names: the prompt's exposed name, or the exposed URI (template). */
export const ItemKind = z.enum(["prompt", "resource", "resource-template"]);
export type ItemKind = z.infer<typeof ItemKind>;

const EventMeta = z.strictObject({
  /** Id of the command that produced the event; also the JetStream msgID. */
  commandId: z.string().min(1),
  at: z.iso.datetime(),
  /** Who issued the command: `admin:<token name>`, or `registry` for what it does by itself (discovery, auto-adopted drift). */
  actor: z.string().min(1).max(128).optional(),
  /**
   * Set when `commandId` is an admin's `Idempotency-Key`: a digest of the request it was sent with
   * (method, route, parameters, body, actor), so a retry can be told from a reuse on every replica.
   */
  fingerprint: z.string().regex(/^[A-Za-z0-9_-]{43}$/).optional(),
});
export type EventMeta = z.infer<typeof EventMeta>;

const event = <T extends EventType, D extends z.ZodType>(type: T, data: D) =>
  z.strictObject({ type: z.literal(type), version: z.literal(EVENT_SCHEMA_VERSION), data, meta: EventMeta });

export const UpstreamRegistered = event(
  EventType.upstreamRegistered,
  z.strictObject({
    name: ResourceName,
    description: z.string().optional(),
    transport: RecordedUpstreamTransport,
    options: RecordedUpstreamOptions.default({}),
  }),
);
/** A JSON Patch operation (RFC 6902), as drift diffs are written. */
const PatchOperation = z.looseObject({ op: z.string(), path: z.string() });

/**
 * How one tool's definition moved since the previous discovery (null: absent on that side),
 * with the structural diff and its class (a new tool counts as compatible).
 */
export const ToolChange = z.strictObject({
  tool: z.string(),
  before: DefinitionHash.nullable(),
  after: DefinitionHash.nullable(),
  classification: z.enum(["compatible", "breaking", "description-changed"]),
  diff: z.array(PatchOperation),
  /** True when `diff` was left out (empty) so that the event fits one bus message: the definitions before and after still tell it. */
  diffOmitted: z.literal(true).optional(),
  /** Absent: a tool. Otherwise what `tool` names: a prompt's name, a resource's URI or a template's URI template. */
  kind: z.enum(["prompt", "resource", "resource-template"]).optional(),
});

export const UpstreamToolsDiscovered = event(
  EventType.upstreamToolsDiscovered,
  z.strictObject({
    name: ResourceName,
    serverInfo: ServerInfo,
    tools: z.array(DiscoveredTool),
    /** Absent in events recorded before they were discovered, and when the upstream offers none. */
    prompts: z.array(DiscoveredPrompt).optional(),
    resources: z.array(DiscoveredResource).optional(),
    resourceTemplates: z.array(DiscoveredResourceTemplate).optional(),
    changes: z.array(ToolChange).default([]),
    /** How many changes were left out (`changes` is then empty) so that the event fits one bus message. */
    changesOmitted: z.number().int().positive().optional(),
    /** Set when the upstream reports a different `serverInfo.version` than last time. */
    previousServerVersion: z.string().optional(),
  }),
);
/** A new transport, options or description; discovered tools are kept until the next discovery. */
export const UpstreamUpdated = event(
  EventType.upstreamUpdated,
  z.strictObject({ name: ResourceName, description: z.string().optional(), transport: RecordedUpstreamTransport, options: RecordedUpstreamOptions.default({}) }),
);
export const UpstreamRemoved = event(EventType.upstreamRemoved, z.strictObject({ name: ResourceName }));
export const DriftPolicy = z.enum(["pinned", "auto-compatible"]);
export type DriftPolicy = z.infer<typeof DriftPolicy>;
/**
 * Which server-to-client requests a virtual server relays from its upstreams to its agents
 * (docs/protocol.md, "Server-to-client requests"): elicitation by default (the user sees and
 * answers it); sampling and roots only when allowed (sampling spends the agent's model and can
 * read its context, roots reveal its file layout; both are deprecated in 2026-07-28).
 */
export const InteractionSettings = z.strictObject({
  elicitation: z.boolean().default(true),
  sampling: z.boolean().default(false),
  roots: z.boolean().default(false),
});
export type InteractionSettings = z.infer<typeof InteractionSettings>;

export const VirtualServerCreated = event(
  EventType.virtualServerCreated,
  z.strictObject({
    name: ResourceName,
    description: z.string().optional(),
    tools: z.array(SelectedTool),
    driftPolicy: DriftPolicy.default("pinned"),
    naming: Naming.default({ policy: "suffix", prefixes: {} }),
    ...SelectedItems,
    interactions: InteractionSettings.optional(),
  }),
);
/** A selection's replacement description set (a string) or removed (absent): what agents read. */
export const VirtualServerToolDescribed = event(
  EventType.virtualServerToolDescribed,
  z.strictObject({ name: ResourceName, exposedName: ExposedToolName, description: z.string().optional() }),
);
export const VirtualServerToolRenamed = event(
  EventType.virtualServerToolRenamed,
  z.strictObject({ name: ResourceName, from: ExposedToolName, to: ExposedToolName, deprecatedAlias: z.boolean() }),
);
export const VirtualServerToolRepinned = event(
  EventType.virtualServerToolRepinned,
  z.strictObject({
    name: ResourceName,
    exposedName: ExposedToolName,
    hash: DefinitionHash,
    definition: PinnedToolDefinition,
    /** The environment whose pin moves; absent: the default one (the selection itself). */
    environment: ResourceName.optional(),
  }),
);
/**
 * A list of re-pins in one environment. Each names the definition by its hash and the upstream that
 * reports it at this point of the stream (whose state every node folded just before), so that one
 * adoption does not copy every definition once a virtual server and environment: a hostile
 * upstream's compatible changes, a dozen an hour under its list-change budget, were recorded again
 * in every `auto-compatible` virtual server that selects it. The release that introduced the event
 * carried each definition itself instead; such entries are still read.
 */
export const VirtualServerToolsRepinned = event(
  EventType.virtualServerToolsRepinned,
  z.strictObject({
    name: ResourceName,
    environment: ResourceName.optional(),
    tools: z
      .array(
        z.union([
          z.strictObject({ exposedName: ExposedToolName, hash: DefinitionHash, upstream: ResourceName }),
          z.strictObject({ exposedName: ExposedToolName, hash: DefinitionHash, definition: PinnedToolDefinition }),
        ]),
      )
      .min(1),
  }),
);
export type ToolRepin = z.infer<typeof VirtualServerToolsRepinned>["data"]["tools"][number];
export const VirtualServerDriftRejected = event(
  EventType.virtualServerDriftRejected,
  z.strictObject({ name: ResourceName, exposedName: ExposedToolName, hash: DefinitionHash.nullable(), environment: ResourceName.optional() }),
);
export const VirtualServerDriftPolicySet = event(EventType.virtualServerDriftPolicySet, z.strictObject({ name: ResourceName, policy: DriftPolicy }));
/** The server-to-client requests the virtual server relays from now on (the whole setting, defaults filled in). */
export const VirtualServerInteractionsSet = event(EventType.virtualServerInteractionsSet, z.strictObject({ name: ResourceName, interactions: InteractionSettings }));
export const VirtualServerToolsSelected = event(
  EventType.virtualServerToolsSelected,
  z.strictObject({ name: ResourceName, tools: z.array(SelectedTool).min(1) }),
);
export const VirtualServerToolsDeselected = event(
  EventType.virtualServerToolsDeselected,
  z.strictObject({ name: ResourceName, exposedNames: z.array(ExposedToolName).min(1) }),
);
export const VirtualServerUpdated = event(EventType.virtualServerUpdated, z.strictObject({ name: ResourceName, description: z.string().optional() }));
export const VirtualServerDeleted = event(EventType.virtualServerDeleted, z.strictObject({ name: ResourceName }));

export const VirtualServerAccessGranted = event(EventType.virtualServerAccessGranted, z.strictObject({ name: ResourceName, grant: Grant }));
export const VirtualServerAccessRevoked = event(
  EventType.virtualServerAccessRevoked,
  z.strictObject({ name: ResourceName, grantId: Grant.shape.grantId }),
);
export const VirtualServerAuditConfigured = event(
  EventType.virtualServerAuditConfigured,
  z.strictObject({ name: ResourceName, audit: AuditSettings }),
);
export const VirtualServerItemsSelected = event(EventType.virtualServerItemsSelected, z.strictObject({ name: ResourceName, ...SelectedItems }));
/** Prompts by exposed name, resources and templates by exposed URI (template). */
export const VirtualServerItemsDeselected = event(
  EventType.virtualServerItemsDeselected,
  z.strictObject({ name: ResourceName, prompts: z.array(ExposedToolName).optional(), resources: z.array(ResourceUri).optional(), resourceTemplates: z.array(ResourceUri).optional() }),
);
export const VirtualServerItemRepinned = event(
  EventType.virtualServerItemRepinned,
  z.strictObject({
    name: ResourceName,
    kind: ItemKind,
    key: z.string().min(1),
    hash: DefinitionHash,
    definition: z.union([PinnedPrompt, PinnedResource, PinnedResourceTemplate]),
    /** The environment whose pin moves; absent: the default one (the selection itself). */
    environment: ResourceName.optional(),
  }),
);
/** A list of re-pins in one environment, each named as `tools-repinned` names them (or, as first released, what an `item-repinned` event holds). */
export const VirtualServerItemsRepinned = event(
  EventType.virtualServerItemsRepinned,
  z.strictObject({
    name: ResourceName,
    environment: ResourceName.optional(),
    items: z
      .array(
        z.union([
          z.strictObject({ kind: ItemKind, key: z.string().min(1), hash: DefinitionHash, upstream: ResourceName }),
          VirtualServerItemRepinned.shape.data.omit({ name: true, environment: true }),
        ]),
      )
      .min(1),
  }),
);
export type ItemRepin = z.infer<typeof VirtualServerItemsRepinned>["data"]["items"][number];
export const VirtualServerItemDriftRejected = event(
  EventType.virtualServerItemDriftRejected,
  z.strictObject({ name: ResourceName, kind: ItemKind, key: z.string().min(1), hash: DefinitionHash.nullable(), environment: ResourceName.optional() }),
);
/** A pin as an environment holds it: the same shape as a selection (logical upstream, pinned definition). */
export const EnvironmentPin = SelectedTool;
export type EnvironmentPin = SelectedTool;

/**
 * What a promotion copies, named rather than carried: how many pins of each kind, and a SHA-256
 * over each pin's kind, key, source and definition hash, sorted (`promotionDigest` in libs/domain).
 */
export const PromotedPins = z.strictObject({
  tools: z.number().int().nonnegative(),
  prompts: z.number().int().nonnegative(),
  resources: z.number().int().nonnegative(),
  resourceTemplates: z.number().int().nonnegative(),
  digest: DefinitionHash,
});
export type PromotedPins = z.infer<typeof PromotedPins>;

/**
 * A promotion names what it copies: the source environment's pins at this point of the stream,
 * which every node's projection holds with their definitions (all its tools, or `tools` only; every
 * prompt, resource and template), with their digest (`copied`), which a fold checks before it copies.
 * Carrying every definition made the event grow with them: 5,000 tools of 1.6 KB were 8 MB, past
 * a bus message, and such a promotion was refused (413) with no way around it. Events recorded
 * before carry the pins themselves (`pins`, and `items`: the prompts, resources and templates, each
 * kind absent when none; the whole field absent in events recorded before promotion covered them,
 * whose environment serves the selection's); they are still read.
 */
export const VirtualServerPromoted = event(
  EventType.virtualServerPromoted,
  z.union([
    z.strictObject({
      name: ResourceName,
      from: ResourceName,
      to: ResourceName,
      /** Only these of the source's tools, by exposed name; absent: all of them. */
      tools: z.array(ExposedToolName).optional(),
      copied: PromotedPins,
      forced: z.boolean(),
    }),
    z.strictObject({
      name: ResourceName,
      from: ResourceName,
      to: ResourceName,
      pins: z.array(EnvironmentPin),
      items: z.strictObject(SelectedItems).optional(),
      forced: z.boolean(),
    }),
  ]),
);
/** Logical upstream name (as used in selections) → the concrete upstream registration in this environment. */
export const EnvironmentBindingsSet = event(
  EventType.environmentBindingsSet,
  z.strictObject({ name: ResourceName, bindings: z.record(ResourceName, ResourceName) }),
);
export const EnvironmentDeleted = event(EventType.environmentDeleted, z.strictObject({ name: ResourceName }));

/** `identityProviders`: whose tokens may act as the consumer; absent (also in events recorded before it existed) means none. */
const ConsumerData = z.strictObject({
  name: ResourceName,
  description: z.string().optional(),
  groups: z.array(GroupName),
  identityProviders: z.array(ResourceName).optional(),
});
export const ConsumerCreated = event(EventType.consumerCreated, ConsumerData);
/** The consumer's description, groups and identity providers as they are from now on; keys are untouched. */
export const ConsumerUpdated = event(EventType.consumerUpdated, ConsumerData);
export const ConsumerKeyIssued = event(EventType.consumerKeyIssued, z.strictObject({ name: ResourceName, key: StoredKey }));
export const ConsumerKeyRevoked = event(EventType.consumerKeyRevoked, z.strictObject({ name: ResourceName, keyId: KeyId }));
export const ConsumerConnectionRevoked = event(EventType.consumerConnectionRevoked, z.strictObject({ name: ResourceName, upstream: ResourceName }));
export const ConsumerDeleted = event(EventType.consumerDeleted, z.strictObject({ name: ResourceName }));
export const IdentityProviderRegistered = event(EventType.identityProviderRegistered, IdentityProvider);
export const IdentityProviderRemoved = event(EventType.identityProviderRemoved, z.strictObject({ name: ResourceName }));

export const RegistryEvent = z.discriminatedUnion("type", [
  UpstreamRegistered,
  UpstreamToolsDiscovered,
  UpstreamUpdated,
  UpstreamRemoved,
  VirtualServerCreated,
  VirtualServerUpdated,
  VirtualServerToolsSelected,
  VirtualServerToolsDeselected,
  VirtualServerDeleted,
  VirtualServerAccessGranted,
  VirtualServerAccessRevoked,
  VirtualServerAuditConfigured,
  VirtualServerToolRepinned,
  VirtualServerToolsRepinned,
  VirtualServerDriftRejected,
  VirtualServerDriftPolicySet,
  VirtualServerInteractionsSet,
  VirtualServerToolRenamed,
  VirtualServerToolDescribed,
  VirtualServerPromoted,
  VirtualServerItemsSelected,
  VirtualServerItemsDeselected,
  VirtualServerItemRepinned,
  VirtualServerItemsRepinned,
  VirtualServerItemDriftRejected,
  EnvironmentBindingsSet,
  EnvironmentDeleted,
  ConsumerCreated,
  ConsumerUpdated,
  ConsumerKeyIssued,
  ConsumerKeyRevoked,
  ConsumerConnectionRevoked,
  ConsumerDeleted,
  IdentityProviderRegistered,
  IdentityProviderRemoved,
]);
export type RegistryEvent = z.infer<typeof RegistryEvent>;
export type EventOf<T extends EventType> = Extract<RegistryEvent, { type: T }>;
type WithoutMeta<E> = E extends unknown ? Omit<E, "meta"> : never;
/** What a decider returns: the store adds `meta` when it appends. */
export type NewEvent = WithoutMeta<RegistryEvent>;
