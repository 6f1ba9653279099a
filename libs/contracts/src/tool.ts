import { z } from "zod";

/**
 * A tool definition as an upstream reports it. Upstreams are not ours, so unknown
 * keys are accepted here; what gets pinned is narrowed by `PinnedToolDefinition`.
 */
export const UpstreamTool = z.looseObject({
  name: z.string().min(1),
  title: z.string().optional(),
  description: z.string().optional(),
  inputSchema: z.looseObject({ type: z.literal("object") }),
  outputSchema: z.looseObject({ type: z.literal("object") }).optional(),
  annotations: z.looseObject({}).optional(),
  icons: z.array(z.looseObject({})).max(64).optional(),
  execution: z.looseObject({}).optional(),
  _meta: z.looseObject({}).optional(),
});
export type UpstreamTool = z.infer<typeof UpstreamTool>;

/** The fields of a tool that are pinned and served to agents; the hash covers exactly these. */
export const PinnedToolDefinition = z.strictObject({
  name: z.string().min(1),
  title: z.string().optional(),
  description: z.string().optional(),
  inputSchema: z.record(z.string(), z.unknown()),
  outputSchema: z.record(z.string(), z.unknown()).optional(),
  annotations: z.record(z.string(), z.unknown()).optional(),
  /** Shown to people: a change is description-class drift (an icon can impersonate another tool). */
  icons: z.array(z.record(z.string(), z.unknown())).optional(),
  /** How the tool may be called (`taskSupport`): a change is breaking. */
  execution: z.record(z.string(), z.unknown()).optional(),
  _meta: z.record(z.string(), z.unknown()).optional(),
});
export type PinnedToolDefinition = z.infer<typeof PinnedToolDefinition>;

/** `sha256:<64 hex>` of the RFC 8785 canonical JSON of a pinned definition. */
export const DefinitionHash = z.string().regex(/^sha256:[0-9a-f]{64}$/);
export type DefinitionHash = z.infer<typeof DefinitionHash>;

export const ServerInfo = z.looseObject({ name: z.string(), version: z.string() });
export type ServerInfo = z.infer<typeof ServerInfo>;
