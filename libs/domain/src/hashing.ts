import { createHash } from "node:crypto";
import type { DefinitionHash, PinnedPrompt, PinnedResource, PinnedResourceTemplate, PinnedToolDefinition, UpstreamTool } from "@manifold/contracts";
import { canonicalize } from "json-canonicalize";

/**
 * `execution` without what the specification says by default (`taskSupport: "forbidden"`): a
 * tool that states the default is the same tool as one that leaves it out, and pins made before
 * `execution` was kept do not drift when an upstream reports it.
 */
function withoutDefaults(execution: UpstreamTool["execution"]): UpstreamTool["execution"] {
  if (execution === undefined || execution === null || typeof execution !== "object") return execution;
  const { taskSupport, ...rest } = execution as Record<string, unknown>;
  const kept = taskSupport === "forbidden" ? rest : { taskSupport, ...rest };
  return Object.keys(kept).length > 0 ? (kept as UpstreamTool["execution"]) : undefined;
}

/** Narrows what an upstream reports to the fields Manifold pins and serves. */
export function pinDefinition(tool: UpstreamTool): PinnedToolDefinition {
  const pinned: PinnedToolDefinition = { name: tool.name, inputSchema: tool.inputSchema };
  if (tool.title !== undefined) pinned.title = tool.title;
  if (tool.description !== undefined) pinned.description = tool.description;
  if (tool.outputSchema !== undefined) pinned.outputSchema = tool.outputSchema;
  if (tool.annotations !== undefined) pinned.annotations = tool.annotations;
  if (tool.icons !== undefined) pinned.icons = tool.icons;
  const execution = withoutDefaults(tool.execution);
  if (execution !== undefined) pinned.execution = execution;
  if (tool._meta !== undefined) pinned._meta = tool._meta;
  return pinned;
}

/** SHA-256 over RFC 8785 canonical JSON, so key order and number formatting never change a hash. */
export function definitionHash(definition: PinnedToolDefinition | PinnedPrompt | PinnedResource | PinnedResourceTemplate): DefinitionHash {
  return `sha256:${createHash("sha256").update(canonicalize(definition)).digest("hex")}`;
}

/**
 * Identifies a registration of an upstream: how it is reached (transport and options, credentials
 * as references) and when it was registered (`registeredAt`), so the registry asks for, and
 * records, the lists of exactly the registration it holds. Without the sequence, a list read before
 * an upstream was removed and registered again with the same settings (its `env:` reference now
 * another account's key) was recorded as the new registration's.
 */
export function registrationHash(upstream: { transport: unknown; options: unknown; registeredAt?: number | undefined }): string {
  const registration = { transport: upstream.transport, options: upstream.options, registeredAt: upstream.registeredAt ?? null };
  return createHash("sha256").update(canonicalize(registration)).digest("hex").slice(0, 16);
}

/** SHA-256 (base64url) over the canonical JSON of a request: equal for the same request whatever its key order. */
export function requestFingerprint(request: { method: string; route: string; params: unknown; query: unknown; body: unknown; actor: string }): string {
  return createHash("sha256").update(canonicalize(request)).digest("base64url");
}
