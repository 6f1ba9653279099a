import { MAX_LISTED_ITEMS, ManifoldError, type ListReply } from "@manifold/contracts";
import { Client, ProtocolError, SdkError, SdkErrorCode, type Tool } from "@modelcontextprotocol/client";
import { tooLarge } from "./requestBounds.js";
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

/** A list being walked, counted page by page as each arrives. */
interface Walk {
  readonly upstream: string;
  readonly kind: "tools" | "prompts" | "resources" | "resourceTemplates";
  readonly maxBytes: number;
  items: number;
  bytes: number;
  /** The last page counted, as JSON: a page that repeats it under the cursor it was asked with ends the walk uncounted. */
  previous: string | undefined;
}

/** The walk each request's options belong to: the client passes one options object to every page of a walk. */
const walks = new WeakMap<object, Walk>();

/**
 * The SDK client, with the pages of a list it walks counted as they arrive: past
 * `MAX_LISTED_ITEMS` items, or more bytes than one bus message holds, the walk ends at that
 * page. Before, the client walked all 16 pages first: 16 pages of 19,000 tools each held the
 * connector's event loop 450–640 ms for every upstream on it, only to be refused as too large.
 */
export class ListingClient extends Client {
  override async request(...args: unknown[]): Promise<never> {
    const result = await (super.request as (...args: unknown[]) => Promise<never>).apply(this, args);
    const options = args.at(-1);
    const walk = typeof options === "object" && options !== null ? walks.get(options) : undefined;
    if (walk) count(walk, (args[0] as { params?: { cursor?: unknown } }).params?.cursor, result);
    return result;
  }
}

function count(walk: Walk, cursor: unknown, result: Record<string, unknown>): void {
  const page = result[walk.kind];
  if (!Array.isArray(page)) return;
  // The SDK ends a walk on a page that repeats the one before under the same cursor, and drops it (an
  // upstream that ignores cursors): not counted, or its whole list would count twice.
  const repeats = cursor !== undefined && result.nextCursor === cursor;
  const tooMany = () => new ManifoldError("upstream_error", `upstream '${walk.upstream}' lists more than ${MAX_LISTED_ITEMS} ${named(walk.kind)}`);
  // Counted before it is read further, unless it may be that repeat (which is no longer than the page it repeats).
  if (!repeats && walk.items + page.length > MAX_LISTED_ITEMS) throw tooMany();
  const json = JSON.stringify(page);
  if (repeats && json === walk.previous) return;
  walk.items += page.length;
  if (walk.items > MAX_LISTED_ITEMS) throw tooMany();
  walk.bytes += Buffer.byteLength(json);
  if (walk.bytes > walk.maxBytes) throw tooLarge(`upstream '${walk.upstream}' lists ${named(walk.kind)} of at least ${walk.bytes} bytes`, walk.bytes, walk.maxBytes);
  walk.previous = json;
}

const named = (kind: Walk["kind"]): string => (kind === "resourceTemplates" ? "resource templates" : kind);

/** Request options for one counted walk of a list. */
function walkOptions(upstream: string, kind: Walk["kind"], timeoutMs: number, maxBytes: number) {
  const options = { timeout: timeoutMs, cacheMode: "bypass" as const };
  walks.set(options, { upstream, kind, maxBytes, items: 0, bytes: 0, previous: undefined });
  return options;
}

/** An aggregated list (the client walks the pages), with an endless one named as such. */
async function walked<T>(upstream: string, kind: Walk["kind"], list: () => Promise<T>): Promise<T> {
  try {
    return await list();
  } catch (error) {
    if (error instanceof SdkError && error.code === SdkErrorCode.ListPaginationExceeded) {
      throw new ManifoldError("upstream_error", `upstream '${upstream}' lists ${named(kind)} on more than ${MAX_LIST_PAGES} pages`, undefined, { cause: error });
    }
    throw error;
  }
}

/** Every page of an upstream's tool list (at most `MAX_LISTED_ITEMS` tools and `maxBytes`), checked for depth (its bytes are hostile). */
export async function listAllTools(client: Client, upstream: string, timeoutMs: number, maxBytes: number): Promise<Tool[]> {
  const { tools } = await walked(upstream, "tools", () => client.listTools(undefined, walkOptions(upstream, "tools", timeoutMs, maxBytes)));
  mustNotNestTooDeep(tools, `upstream '${upstream}'`, "tool list");
  return tools;
}

/**
 * An upstream's prompts, resources and resource templates: every page, at most
 * `MAX_LISTED_ITEMS` of each, each kind only when its capabilities offer it.
 */
export async function listAllItems(client: Client, upstream: string, timeoutMs: number, maxBytes: number): Promise<Pick<ListReply, "prompts" | "resources" | "resourceTemplates">> {
  const offered = client.getServerCapabilities() ?? {};
  const all = async <T>(kind: Walk["kind"], list: (options: ReturnType<typeof walkOptions>) => Promise<T[]>): Promise<T[]> => {
    // An upstream that offers a capability but not one of its lists (templates, often) has none of that kind.
    const items = await walked(upstream, kind, () => list(walkOptions(upstream, kind, timeoutMs, maxBytes))).catch((error: unknown) => {
      if (error instanceof ProtocolError && error.code === METHOD_NOT_FOUND) return [];
      throw error;
    });
    mustNotNestTooDeep(items, `upstream '${upstream}'`, `${named(kind)} list`);
    return items;
  };
  const listed: Pick<ListReply, "prompts" | "resources" | "resourceTemplates"> = {};
  if (offered.prompts) listed.prompts = (await all("prompts", async (options) => (await client.listPrompts(undefined, options)).prompts)) as ListReply["prompts"];
  if (offered.resources) {
    listed.resources = (await all("resources", async (options) => (await client.listResources(undefined, options)).resources)) as ListReply["resources"];
    listed.resourceTemplates = (await all("resourceTemplates", async (options) => (await client.listResourceTemplates(undefined, options)).resourceTemplates)) as ListReply["resourceTemplates"];
  }
  return listed;
}
