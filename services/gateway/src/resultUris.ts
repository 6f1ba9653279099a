import { JsonLimits, jsonTextTooDeep, isRecord } from "@manifold/contracts";
import { UNMAPPED_URI, exposeUri } from "@manifold/domain";

type Json = Record<string, unknown>;

/** An upstream URI as the agent sees it; one that cannot be mapped (no scheme, too long) is `UNMAPPED_URI`, never itself. */
const exposed = (upstream: string, uri: unknown) => (typeof uri === "string" ? (exposeUri(upstream, uri) ?? UNMAPPED_URI) : uri);
/** `uriPrefix`: the (logical) upstream exposed URIs are prefixed with; undefined under `bare` naming, where URIs are exposed unchanged. */

/** A content block's resource URIs (`resource_link`, embedded `resource`), in place. */
function exposeBlock(block: unknown, upstream: string): void {
  if (!isRecord(block)) return;
  if (block.type === "resource_link") block.uri = exposed(upstream, block.uri);
  else if (block.type === "resource" && isRecord(block.resource)) block.resource.uri = exposed(upstream, block.resource.uri);
}

/**
 * Rewrites the resource URIs in an upstream's tools/call or prompts/get result (links and embedded
 * resources, MCP Apps `ui://` ones included) or resources/read result (`contents[].uri`) to the
 * virtual server's `<upstream>+<uri>`, so an agent can follow them with `resources/read`. A result
 * without `"uri"` in its text is returned untouched and unparsed: the hot path pays one substring
 * search. Only the specified places are rewritten, one level deep each: no walk over the result.
 */
export function exposeResultUris(text: string, uriPrefix: string | undefined): string {
  const upstream = uriPrefix;
  if (upstream === undefined || !text.includes('"uri"') || jsonTextTooDeep(text, JsonLimits.resultDepth)) return text;
  let result: unknown;
  try {
    result = JSON.parse(text);
  } catch {
    return text;
  }
  if (!isRecord(result)) return text;
  if (Array.isArray(result.content)) for (const block of result.content) exposeBlock(block, upstream);
  if (Array.isArray(result.messages)) for (const message of result.messages) if (isRecord(message)) exposeBlock(message.content, upstream);
  if (Array.isArray(result.contents)) for (const content of result.contents) if (isRecord(content)) content.uri = exposed(upstream, content.uri);
  return JSON.stringify(result);
}

/** A tool definition's MCP Apps UI resource (`_meta.ui.resourceUri`), mapped like every other URI. */
export function exposeToolMeta<T extends { _meta?: Json | undefined }>(tool: T, uriPrefix: string | undefined): T {
  const ui = tool._meta?.ui;
  const upstream = uriPrefix;
  if (upstream === undefined) return tool;
  if (!isRecord(ui) || typeof ui.resourceUri !== "string") return tool;
  return { ...tool, _meta: { ...tool._meta, ui: { ...ui, resourceUri: exposed(upstream, ui.resourceUri) } } };
}
