import { z } from "zod";
import { ExposedToolName, ResourceName, UpstreamToolName } from "./names.js";
import { ServerInfo, UpstreamTool } from "./tool.js";
import { PromptRef, ResourceRef, ResourceUri, type UpstreamPrompt, type UpstreamResource, type UpstreamResourceTemplate } from "./mcpItems.js";
import { DriftPolicy, InteractionSettings, Naming } from "./events.js";
import { UpstreamOptions, UpstreamTransport } from "./upstream.js";
import type { Grant, IdentityProvider, StoredKey } from "./access.js";
import type { AuditSettings } from "./audit.js";
import type { CreateConsumerBody, UpdateConsumerBody } from "./access.js";
import { RegistryLimits } from "./registryLimits.js";

/** A tool to select, by the upstream that serves it and its original name, with optional overrides. */
export const ToolRef = z.strictObject({
  upstream: ResourceName,
  tool: UpstreamToolName,
  /** The exposed name to use instead of the naming policy's. */
  alias: ExposedToolName.optional(),
  /** A description agents see instead of the upstream's (the upstream's stays pinned for drift). */
  description: z.string().max(4096).optional(),
});
export type ToolRef = z.infer<typeof ToolRef>;

/** Bodies of the admin API; also what the decider receives. */
export const RegisterUpstreamBody = z.strictObject({
  name: ResourceName,
  description: z.string().max(1024).optional(),
  transport: UpstreamTransport,
  options: UpstreamOptions.default({}),
});
export const CreateVirtualServerBody = z.strictObject({
  name: ResourceName,
  description: z.string().max(1024).optional(),
  naming: Naming.default({ policy: "suffix", prefixes: {} }),
  // At most what a virtual server holds: past it the request is refused before anything is decided.
  tools: z.array(ToolRef).max(RegistryLimits.itemsPerVirtualServer).default([]),
  /** Prompts and resources (by URI or URI template) to expose beside the tools. */
  prompts: z.array(PromptRef).max(1_000).default([]),
  resources: z.array(ResourceRef).max(1_000).default([]),
  driftPolicy: DriftPolicy.default("pinned"),
  /** Server-to-client requests relayed to agents; absent: the defaults of `InteractionSettings`. */
  interactions: InteractionSettings.optional(),
});
export const EnvironmentBody = z.strictObject({ bindings: z.record(ResourceName, ResourceName).default({}) });
export const PromoteBody = z.strictObject({
  from: ResourceName,
  to: ResourceName,
  force: z.boolean().default(false),
  /**
   * Only these of the source's tools (by exposed name); all when absent. Empty: none of them (the
   * environment serves the source's prompts and resources only), as an export writes an environment
   * promoted before its source had tools.
   */
  tools: z.array(ExposedToolName).max(1_000).optional(),
});
/** Sets (or, when absent, removes) a selection's replacement description. */
export const DescribeToolBody = z.strictObject({ description: z.string().max(4096).optional() });
export const RenameToolBody = z.strictObject({ newName: ExposedToolName, keepDeprecatedAlias: z.boolean().default(true) });
export const UpdateUpstreamBody = RegisterUpstreamBody.omit({ name: true });
export const UpdateVirtualServerBody = z.strictObject({ description: z.string().max(1024).optional() });
export const DriftPolicyBody = z.strictObject({ policy: DriftPolicy });
/** `PUT /v1/virtual-servers/{name}/interactions`: the whole setting; a kind left out takes its default. */
export const InteractionsBody = InteractionSettings;
export const SelectToolsBody = z.strictObject({ tools: z.array(ToolRef).min(1).max(RegistryLimits.itemsPerVirtualServer) });
export const DeselectToolsBody = z.strictObject({ exposedNames: z.array(ExposedToolName).min(1).max(RegistryLimits.itemsPerVirtualServer) });
export const SelectPromptsBody = z.strictObject({ prompts: z.array(PromptRef).min(1).max(1_000) });
export const SelectResourcesBody = z.strictObject({ resources: z.array(ResourceRef).min(1).max(1_000) });
export const DeselectPromptsBody = z.strictObject({ exposedNames: z.array(ExposedToolName).min(1).max(1_000) });
/** Exposed URIs of resources or URI templates (`<upstream>+<original>`). */
export const DeselectResourcesBody = z.strictObject({ uris: z.array(ResourceUri).min(1).max(1_000) });


export const CommandType = {
  registerUpstream: "register-upstream",
  recordDiscovery: "record-discovery",
  removeUpstream: "remove-upstream",
  updateUpstream: "update-upstream",
  updateVirtualServer: "update-virtual-server",
  createVirtualServer: "create-virtual-server",
  selectTools: "select-tools",
  deselectTools: "deselect-tools",
  selectItems: "select-items",
  deselectItems: "deselect-items",
  deleteVirtualServer: "delete-virtual-server",
  grantAccess: "grant-access",
  configureAudit: "configure-audit",
  acceptDrift: "accept-drift",
  rejectDrift: "reject-drift",
  adoptCompatible: "adopt-compatible",
  setDriftPolicy: "set-drift-policy",
  setInteractions: "set-interactions",
  renameTool: "rename-tool",
  describeTool: "describe-tool",
  promote: "promote",
  setEnvironment: "set-environment",
  deleteEnvironment: "delete-environment",
  revokeAccess: "revoke-access",
  createConsumer: "create-consumer",
  updateConsumer: "update-consumer",
  issueKey: "issue-key",
  revokeKey: "revoke-key",
  revokeConnection: "revoke-connection",
  deleteConsumer: "delete-consumer",
  registerIdentityProvider: "register-identity-provider",
  removeIdentityProvider: "remove-identity-provider",
} as const;

/**
 * What an accept or reject of pending drift was decided on. `hash`: the upstream definition that
 * was reviewed (the drift's `currentHash`, null when it was gone); a definition reported since is not decided by it.
 */
export interface DriftReview {
  /** null: reviewed as gone from the upstream. */
  hash?: string | null | undefined;
}

export type RegistryCommand =
  | ({ type: typeof CommandType.registerUpstream } & z.infer<typeof RegisterUpstreamBody>)
  | {
      type: typeof CommandType.recordDiscovery;
      name: string;
      /** The registration the lists were read under (`registrationHash`): recorded only while it is still the upstream's (every report names one; tests may not). */
      registration?: string | undefined;
      serverInfo: ServerInfo;
      tools: UpstreamTool[];
      prompts?: UpstreamPrompt[] | undefined;
      resources?: UpstreamResource[] | undefined;
      resourceTemplates?: UpstreamResourceTemplate[] | undefined;
      /** The most bytes the event may take (one bus message, less room for its metadata): its changes' detail gives way first. */
      maxEventBytes?: number | undefined;
    }
  | { type: typeof CommandType.removeUpstream; name: string }
  | ({ type: typeof CommandType.updateUpstream } & z.infer<typeof RegisterUpstreamBody>)
  | { type: typeof CommandType.updateVirtualServer; name: string; description?: string | undefined }
  | ({ type: typeof CommandType.createVirtualServer } & Omit<z.infer<typeof CreateVirtualServerBody>, "prompts" | "resources"> & {
      prompts?: PromptRef[] | undefined;
      resources?: ResourceRef[] | undefined;
    })
  | ({ type: typeof CommandType.selectTools; name: string } & z.infer<typeof SelectToolsBody>)
  | ({ type: typeof CommandType.deselectTools; name: string } & z.infer<typeof DeselectToolsBody>)
  | { type: typeof CommandType.selectItems; name: string; prompts: PromptRef[]; resources: ResourceRef[] }
  /** Prompts by exposed name; resources and templates by exposed URI (template). */
  | { type: typeof CommandType.deselectItems; name: string; prompts: string[]; resources: string[] }
  | { type: typeof CommandType.deleteVirtualServer; name: string }
  | { type: typeof CommandType.grantAccess; name: string; grant: Grant }
  | { type: typeof CommandType.configureAudit; name: string; audit: AuditSettings }
  | ({ type: typeof CommandType.acceptDrift; name: string; exposedName: string; environment?: string | undefined } & DriftReview)
  | ({ type: typeof CommandType.rejectDrift; name: string; exposedName: string; environment?: string | undefined } & DriftReview)
  /**
   * The `auto-compatible` policy's own accept: every compatible change pending in the virtual
   * server (of one upstream's, when named), in every environment, as found when decided.
   */
  | { type: typeof CommandType.adoptCompatible; name: string; upstream?: string | undefined; maxEventBytes?: number | undefined }
  | { type: typeof CommandType.setDriftPolicy; name: string; policy: DriftPolicy }
  | { type: typeof CommandType.setInteractions; name: string; interactions: InteractionSettings }
  | ({ type: typeof CommandType.renameTool; name: string; exposedName: string } & z.infer<typeof RenameToolBody>)
  | ({ type: typeof CommandType.promote; name: string } & z.infer<typeof PromoteBody>)
  | { type: typeof CommandType.describeTool; name: string; exposedName: string; description?: string | undefined }
  | ({ type: typeof CommandType.setEnvironment; name: string } & z.infer<typeof EnvironmentBody>)
  | { type: typeof CommandType.deleteEnvironment; name: string }
  | { type: typeof CommandType.revokeAccess; name: string; grantId: string }
  | ({ type: typeof CommandType.createConsumer } & z.infer<typeof CreateConsumerBody>)
  | ({ type: typeof CommandType.updateConsumer; name: string } & z.infer<typeof UpdateConsumerBody>)
  /** The handler draws the key id, salt and secret; the decider only records the digest. */
  | { type: typeof CommandType.issueKey; name: string; key: StoredKey }
  | { type: typeof CommandType.revokeKey; name: string; keyId: string }
  | { type: typeof CommandType.revokeConnection; name: string; upstream: string }
  | { type: typeof CommandType.deleteConsumer; name: string }
  | ({ type: typeof CommandType.registerIdentityProvider } & IdentityProvider)
  | { type: typeof CommandType.removeIdentityProvider; name: string };
