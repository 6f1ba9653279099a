import { MAX_LISTED_ITEMS, ManifoldError, type ListReply } from "@manifold/contracts";
import { ProtocolError, SdkError, SdkErrorCode, type Client, type Tool } from "@modelcontextprotocol/client";
import { mustNotNestTooDeep } from "./upstreamErrors.js";

/** JSON-RPC "Method not found". */
const METHOD_NOT_FOUND = -32601;

/**
 * The most pages of one list the client walks (its `listMaxPages`). Past it the list is the
 * upstream's error, not the upstream being away: before, an endless cursor read the SDK's 64
 * pages, was reported unreachable, dropped the shared session, and its reconnect started the
 * walk again (574 pages, 115 MB in 10 s).
 */
export const MAX_LIST_PAGES = 16;

/** An aggregated list (the client walks the pages), with an endless one named as such. */
async function walked<T>(upstream: string, kind: string, list: () => Promise<T>): Promise<T> {
  try {
    return await list();
  } catch (error) {
    if (error instanceof SdkError && error.code === SdkErrorCode.ListPaginationExceeded) {
      throw new ManifoldError("upstream_error", `upstream '${upstream}' lists ${kind} on more than ${MAX_LIST_PAGES} pages`, undefined, { cause: error });
    }
    throw error;
  }
}

/** Every page of an upstream's tool list, checked for depth (its bytes are hostile). */
export async function listAllTools(client: Client, upstream: string, timeoutMs: number): Promise<Tool[]> {
  const { tools } = await walked(upstream, "tools", () => client.listTools(undefined, { timeout: timeoutMs, cacheMode: "bypass" }));
  mustNotNestTooDeep(tools, `upstream '${upstream}'`, "tool list");
  return tools;
}

/**
 * An upstream's prompts, resources and resource templates: every page, at most
 * `MAX_LISTED_ITEMS` of each, each kind only when its capabilities offer it.
 */
export async function listAllItems(client: Client, upstream: string, timeoutMs: number): Promise<Pick<ListReply, "prompts" | "resources" | "resourceTemplates">> {
  const offered = client.getServerCapabilities() ?? {};
  const options = { timeout: timeoutMs, cacheMode: "bypass" as const };
  const all = async <T>(kind: string, list: () => Promise<T[]>): Promise<T[]> => {
    // An upstream that offers a capability but not one of its lists (templates, often) has none of that kind.
    const items = await walked(upstream, kind, list).catch((error: unknown) => {
      if (error instanceof ProtocolError && error.code === METHOD_NOT_FOUND) return [];
      throw error;
    });
    if (items.length > MAX_LISTED_ITEMS) throw new ManifoldError("upstream_error", `upstream '${upstream}' lists more than ${MAX_LISTED_ITEMS} ${kind}`);
    mustNotNestTooDeep(items, `upstream '${upstream}'`, `${kind} list`);
    return items;
  };
  const listed: Pick<ListReply, "prompts" | "resources" | "resourceTemplates"> = {};
  if (offered.prompts) listed.prompts = (await all("prompts", async () => (await client.listPrompts(undefined, options)).prompts)) as ListReply["prompts"];
  if (offered.resources) {
    listed.resources = (await all("resources", async () => (await client.listResources(undefined, options)).resources)) as ListReply["resources"];
    listed.resourceTemplates = (await all("resource templates", async () => (await client.listResourceTemplates(undefined, options)).resourceTemplates)) as ListReply["resourceTemplates"];
  }
  return listed;
}
