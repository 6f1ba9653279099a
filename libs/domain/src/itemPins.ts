import type {
  DiscoveredPrompt,
  DiscoveredResource,
  DiscoveredResourceTemplate,
  PinnedPrompt,
  PinnedResource,
  PinnedResourceTemplate,
  UpstreamPrompt,
  UpstreamResource,
  UpstreamResourceTemplate,
} from "@manifold/contracts";
import { definitionHash } from "./hashing.js";

/** Copies the listed keys that are present, in a fixed order (the hash is over canonical JSON anyway). */
function pick<T extends object>(source: Record<string, unknown>, keys: readonly string[]): T {
  const out: Record<string, unknown> = {};
  for (const key of keys) if (source[key] !== undefined) out[key] = source[key];
  return out as T;
}

const RESOURCE_KEYS = ["name", "title", "description", "mimeType", "annotations", "icons", "_meta"] as const;

export function pinPrompt(prompt: UpstreamPrompt): PinnedPrompt {
  const pinned = pick<PinnedPrompt>(prompt, ["name", "title", "description", "icons", "_meta"]);
  if (prompt.arguments !== undefined) pinned.arguments = prompt.arguments.map((a) => pick(a, ["name", "title", "description", "required"]));
  return pinned;
}
export const pinResource = (resource: UpstreamResource): PinnedResource => pick(resource, ["uri", ...RESOURCE_KEYS]);
export const pinResourceTemplate = (template: UpstreamResourceTemplate): PinnedResourceTemplate => pick(template, ["uriTemplate", ...RESOURCE_KEYS]);

const discovered = <D extends PinnedPrompt | PinnedResource | PinnedResourceTemplate>(definition: D) => ({ hash: definitionHash(definition), definition });
export const discoverPrompt = (p: UpstreamPrompt): DiscoveredPrompt => discovered(pinPrompt(p));
export const discoverResource = (r: UpstreamResource): DiscoveredResource => discovered(pinResource(r));
export const discoverResourceTemplate = (t: UpstreamResourceTemplate): DiscoveredResourceTemplate => discovered(pinResourceTemplate(t));
