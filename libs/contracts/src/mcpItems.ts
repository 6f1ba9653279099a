import { z } from "zod";
import { DefinitionHash } from "./tool.js";
import { ExposedToolName, ResourceName } from "./names.js";

/**
 * Prompts, resources and resource templates as upstreams report them, and as Manifold pins them.
 * Like tools, what an upstream sends accepts unknown keys; what is pinned is every field the
 * specification defines on the definition (title, icons, annotations, `_meta` included: they are
 * shown to people and models, so a change of them is drift) and nothing else.
 */

/** Longest resource URI or URI template Manifold accepts from anyone (upstream, agent, admin). */
export const MAX_URI_LENGTH = 4_096;
/** Most tools, prompts, resources or resource templates one upstream may list (each kind), across pages. */
export const MAX_LISTED_ITEMS = 1_000;

const Text = z.string().max(65_536);
const Json = z.record(z.string(), z.unknown());
const Icons = z.array(Json).max(64);
export const ResourceUri = z.string().min(1).max(MAX_URI_LENGTH);

const PromptArgument = z.looseObject({ name: z.string().min(1).max(256), title: Text.optional(), description: Text.optional(), required: z.boolean().optional() });
export const UpstreamPrompt = z.looseObject({
  name: z.string().min(1).max(256),
  title: Text.optional(),
  description: Text.optional(),
  arguments: z.array(PromptArgument).max(256).optional(),
  icons: Icons.optional(),
  _meta: Json.optional(),
});
export type UpstreamPrompt = z.infer<typeof UpstreamPrompt>;

const resourceFields = {
  name: z.string().max(1_024),
  title: Text.optional(),
  description: Text.optional(),
  mimeType: z.string().max(256).optional(),
  annotations: Json.optional(),
  icons: Icons.optional(),
  _meta: Json.optional(),
};
export const UpstreamResource = z.looseObject({ uri: ResourceUri, size: z.number().optional(), ...resourceFields });
export type UpstreamResource = z.infer<typeof UpstreamResource>;
/**
 * Most expressions (`{…}`) in one URI template. Matching a URI costs one pass over it per part of
 * the template: an upstream's template of 1,350 parts took 40–90 ms a match, and a grant denying 10
 * URIs under 60 of them held the registry 17.5 s (and every node's replay, for good).
 */
export const MAX_TEMPLATE_EXPRESSIONS = 16;
const expressionsIn = (template: string): number => {
  let count = 0;
  for (let i = template.indexOf("{"); i !== -1; i = template.indexOf("{", i + 1)) count++;
  return count;
};
const ResourceUriTemplate = ResourceUri.refine((template) => expressionsIn(template) <= MAX_TEMPLATE_EXPRESSIONS, {
  message: `a URI template may hold at most ${MAX_TEMPLATE_EXPRESSIONS} expressions`,
});
export const UpstreamResourceTemplate = z.looseObject({ uriTemplate: ResourceUriTemplate, ...resourceFields });
export type UpstreamResourceTemplate = z.infer<typeof UpstreamResourceTemplate>;

/** The pinned forms: exactly the specified fields (a resource's `size` is left out: it moves with its content). */
const PinnedArgument = z.strictObject({ name: z.string(), title: z.string().optional(), description: z.string().optional(), required: z.boolean().optional() });
export const PinnedPrompt = z.strictObject({
  name: z.string().min(1),
  title: z.string().optional(),
  description: z.string().optional(),
  arguments: z.array(PinnedArgument).optional(),
  icons: z.array(Json).optional(),
  _meta: Json.optional(),
});
export type PinnedPrompt = z.infer<typeof PinnedPrompt>;
const pinnedResourceFields = {
  name: z.string(),
  title: z.string().optional(),
  description: z.string().optional(),
  mimeType: z.string().optional(),
  annotations: Json.optional(),
  icons: z.array(Json).optional(),
  _meta: Json.optional(),
};
export const PinnedResource = z.strictObject({ uri: ResourceUri, ...pinnedResourceFields });
export type PinnedResource = z.infer<typeof PinnedResource>;
export const PinnedResourceTemplate = z.strictObject({ uriTemplate: ResourceUri, ...pinnedResourceFields });
export type PinnedResourceTemplate = z.infer<typeof PinnedResourceTemplate>;

export const DiscoveredPrompt = z.strictObject({ hash: DefinitionHash, definition: PinnedPrompt });
export type DiscoveredPrompt = z.infer<typeof DiscoveredPrompt>;
export const DiscoveredResource = z.strictObject({ hash: DefinitionHash, definition: PinnedResource });
export type DiscoveredResource = z.infer<typeof DiscoveredResource>;
export const DiscoveredResourceTemplate = z.strictObject({ hash: DefinitionHash, definition: PinnedResourceTemplate });
export type DiscoveredResourceTemplate = z.infer<typeof DiscoveredResourceTemplate>;

/** A prompt chosen for a virtual server: named by its naming policy (one namespace with its tools), pinned. */
export const SelectedPrompt = z.strictObject({
  exposedName: ExposedToolName,
  upstream: ResourceName,
  prompt: z.string().min(1).max(256),
  hash: DefinitionHash,
  definition: PinnedPrompt,
});
export type SelectedPrompt = z.infer<typeof SelectedPrompt>;
/** A resource (by URI) or resource template (by URI template) chosen for a virtual server, pinned. */
export const SelectedResource = z.strictObject({ upstream: ResourceName, uri: ResourceUri, hash: DefinitionHash, definition: PinnedResource });
export type SelectedResource = z.infer<typeof SelectedResource>;
export const SelectedResourceTemplate = z.strictObject({ upstream: ResourceName, uriTemplate: ResourceUri, hash: DefinitionHash, definition: PinnedResourceTemplate });
export type SelectedResourceTemplate = z.infer<typeof SelectedResourceTemplate>;

/** What an admin selects: prompts by name (an alias overrides the naming policy), resources by URI or URI template. */
export const PromptRef = z.strictObject({ upstream: ResourceName, prompt: z.string().min(1).max(256), alias: ExposedToolName.optional() });
export type PromptRef = z.infer<typeof PromptRef>;
export const ResourceRef = z.union([
  z.strictObject({ upstream: ResourceName, uri: ResourceUri }),
  z.strictObject({ upstream: ResourceName, uriTemplate: ResourceUri }),
]);
export type ResourceRef = z.infer<typeof ResourceRef>;

/**
 * A prompt's stable identity in a virtual server: the (logical) upstream its selection names and
 * the prompt's original name. Aliases and promotion never change it, so grants refer to it.
 */
export const PromptIdentity = z.strictObject({ upstream: ResourceName, prompt: z.string().min(1).max(256) });
export type PromptIdentity = z.infer<typeof PromptIdentity>;
/**
 * A resource's or template's identity: the (logical) upstream and the original URI or URI
 * template. A resource identity may also name one URI a selected template of that upstream expands to.
 */
export const ResourceIdentity = ResourceRef;
export type ResourceIdentity = ResourceRef;

/** The MCP requests a connector serves on `Subjects.upstreamRequest` (besides tools/call, which has its own subject). */
export const UpstreamRequestMethod = z.enum(["resources/read", "prompts/get", "completion/complete", "resources/subscribe", "resources/unsubscribe"]);
export type UpstreamRequestMethod = z.infer<typeof UpstreamRequestMethod>;
export const UpstreamRequest = z.strictObject({ method: UpstreamRequestMethod, params: Json });
export type UpstreamRequest = z.infer<typeof UpstreamRequest>;
