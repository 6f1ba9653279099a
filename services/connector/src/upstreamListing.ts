import { MAX_LISTED_ITEMS, ManifoldError, type ListReply } from "@manifold/contracts";
import { ProtocolError, type Client, type Tool } from "@modelcontextprotocol/client";
import { mustNotNestTooDeep } from "./upstreamErrors.js";

/** JSON-RPC "Method not found". */
const METHOD_NOT_FOUND = -32601;

/** Every page of an upstream's tool list, checked for depth (its bytes are hostile). */
export async function listAllTools(client: Client, upstream: string, timeoutMs: number): Promise<Tool[]> {
  const tools: Tool[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined, { timeout: timeoutMs, cacheMode: "bypass" });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor);
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
  const all = async <T>(kind: string, page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string | undefined }>): Promise<T[]> => {
    const items: T[] = [];
    // An upstream that offers a capability but not one of its lists (templates, often) has none of that kind.
    const unsupported = (error: unknown) => error instanceof ProtocolError && error.code === METHOD_NOT_FOUND;
    const first = await page(undefined).catch((error: unknown) => {
      if (unsupported(error)) return undefined;
      throw error;
    });
    if (!first) return items;
    items.push(...first.items);
    let cursor: string | undefined = first.nextCursor;
    while (cursor) {
      const next = await page(cursor);
      items.push(...next.items);
      cursor = next.nextCursor;
      if (items.length > MAX_LISTED_ITEMS) throw new ManifoldError("upstream_error", `upstream '${upstream}' lists more than ${MAX_LISTED_ITEMS} ${kind}`);
    }
    mustNotNestTooDeep(items, `upstream '${upstream}'`, `${kind} list`);
    return items;
  };
  const params = (cursor: string | undefined) => (cursor ? { cursor } : undefined);
  const listed: Pick<ListReply, "prompts" | "resources" | "resourceTemplates"> = {};
  if (offered.prompts) {
    listed.prompts = (await all("prompts", async (c) => {
      const r = await client.listPrompts(params(c), options);
      return { items: r.prompts, nextCursor: r.nextCursor };
    })) as ListReply["prompts"];
  }
  if (offered.resources) {
    listed.resources = (await all("resources", async (c) => {
      const r = await client.listResources(params(c), options);
      return { items: r.resources, nextCursor: r.nextCursor };
    })) as ListReply["resources"];
    listed.resourceTemplates = (await all("resource templates", async (c) => {
      const r = await client.listResourceTemplates(params(c), options);
      return { items: r.resourceTemplates, nextCursor: r.nextCursor };
    })) as ListReply["resourceTemplates"];
  }
  return listed;
}
