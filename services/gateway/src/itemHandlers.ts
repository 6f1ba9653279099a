import type { Server as LegacyServer } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CompleteRequestSchema,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ReadResourceRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";
import type { Server as ModernServer } from "@modelcontextprotocol/server";
import { callOf } from "./callContext.js";
import type { ItemView } from "./itemCatalog.js";
import { allItems, complete, getPrompt, itemLists, readResource, releaseUpstreams, resourceNotFound, sessionHolder, subscribeUpstream } from "./itemRequests.js";
import { toJsonRpcError, type JsonRpcError } from "./jsonRpc.js";
import type { McpCall } from "./mcpCall.js";
import { viewOf } from "./callPipeline.js";
import type { CallDeps } from "./callDeps.js";
import type { ResourceUpdates } from "./resourceUpdates.js";
import { SessionSubscriptions } from "./sessionSubscriptions.js";
import type { SessionChanges } from "./sessions.js";
import type { ListNotices } from "./listNotices.js";

type Capabilities = ItemView["capabilities"];
type AuthInfo = Parameters<typeof callOf>[0];
/** Runs a handler with the call's current view of the items (without what its grants deny); failures become the JSON-RPC error the lane writes, in its era's code. */
const served = <T>(deps: CallDeps, authInfo: AuthInfo, handle: (call: McpCall, items: ItemView) => T | Promise<T>, asError: (rpc: JsonRpcError) => unknown = (rpc) => rpc) =>
  (async () => {
    const { call } = callOf(authInfo);
    try {
      return await handle(call, viewOf(deps, call).itemsFor(call.access.deniedItems));
    } catch (error) {
      throw asError(toJsonRpcError(error, call.era, call));
    }
  })();

/**
 * Prompts, resources, templates and completions on a 2025-era session's 1.x server, for the kinds
 * the virtual server exposes (`capabilities`, fixed when the session opens). Subscriptions are the
 * session's, kept in its record (`changes`) so every replica holding it listens: the upstream is
 * asked once, updates reach the session while it lasts. Returns the session's listeners on this
 * replica, which follow its record (undefined: the virtual server exposed no resources).
 */
export function serveLegacyItems(
  server: LegacyServer,
  deps: CallDeps,
  capabilities: Capabilities,
  updates: ResourceUpdates,
  changes: SessionChanges,
  where: Pick<McpCall, "virtualServer" | "environment" | "principal">,
  notices: ListNotices,
): SessionSubscriptions | undefined {
  if (capabilities.prompts) {
    server.setRequestHandler(ListPromptsRequestSchema, (r, extra) => served(deps, extra.authInfo, (_c, items) => itemLists.prompts(items, r.params)) as never);
    server.setRequestHandler(GetPromptRequestSchema, (r, extra) => served(deps, extra.authInfo, (call, items) => getPrompt(deps, call, items, r.params)) as never);
  }
  if (capabilities.completions) {
    server.setRequestHandler(CompleteRequestSchema, (r, extra) => served(deps, extra.authInfo, (call, items) => complete(deps, call, items, r.params)) as never);
  }
  if (!capabilities.resources) return undefined;
  server.setRequestHandler(ListResourcesRequestSchema, (r, extra) => served(deps, extra.authInfo, (_c, items) => itemLists.resources(items, r.params)) as never);
  server.setRequestHandler(ListResourceTemplatesRequestSchema, (r, extra) => served(deps, extra.authInfo, (_c, items) => itemLists.templates(items, r.params)) as never);
  server.setRequestHandler(ReadResourceRequestSchema, (r, extra) => served(deps, extra.authInfo, (call, items) => readResource(deps, call, items, r.params)) as never);
  const deniedNow = () => deps.accessNow(where)?.deniedItems;
  const subscriptions = new SessionSubscriptions(deps.catalog, updates, where.virtualServer, where.environment, deniedNow, (uri, stillHeard) => notices.resourceUpdated(uri, stillHeard));
  server.onclose = () => subscriptions.close();
  // Without `subscribe` offered (no upstream behind the resources takes subscriptions), the SDK answers them -32601.
  if (!capabilities.resources.subscribe) return subscriptions;
  server.setRequestHandler(SubscribeRequestSchema, (r, extra) =>
    served(deps, extra.authInfo, async (call, items) => {
      const uri = r.params.uri;
      // A URI the virtual server does not expose is refused before the cap is counted.
      if (!items.resolveUri(uri)) throw resourceNotFound(call, uri);
      // The upstream is asked only when the session did not hold the URI yet and has room for it.
      // Held upstream under the session (`sessionHolder`): until it unsubscribes or ends, not for the upstream session's life.
      await changes.change(extra.sessionId, { type: "subscribe", uri }, () => subscribeUpstream(deps, call, items, uri, holderOf(extra.sessionId)));
      return {};
    }),
  );
  server.setRequestHandler(UnsubscribeRequestSchema, (r, extra) =>
    served(deps, extra.authInfo, async (call) => {
      await changes.change(extra.sessionId, { type: "unsubscribe", uri: r.params.uri });
      const all = allItems(deps, call);
      if (all && extra.sessionId !== undefined) releaseUpstreams(deps, call, all, [r.params.uri], sessionHolder(extra.sessionId));
      return {};
    }),
  );
  return subscriptions;
}

const holderOf = (sessionId: string | undefined) => (sessionId === undefined ? undefined : sessionHolder(sessionId));

/**
 * The same on a 2026-07-28 request's 2.x server. Resource subscriptions arrive in
 * `subscriptions/listen` (see `ModernServers`), not as requests.
 */
export function serveModernItems(server: ModernServer, deps: CallDeps, capabilities: Capabilities, authInfo: AuthInfo, asError: (e: unknown) => unknown): void {
  const run = <T>(handle: (call: McpCall, items: ItemView) => T | Promise<T>) => served(deps, authInfo, handle, asError) as never;
  if (capabilities.prompts) {
    server.setRequestHandler("prompts/list", (r) => run((_c, items) => itemLists.prompts(items, r.params)));
    server.setRequestHandler("prompts/get", (r) => run((call, items) => getPrompt(deps, call, items, r.params)));
  }
  if (capabilities.completions) server.setRequestHandler("completion/complete", (r) => run((call, items) => complete(deps, call, items, r.params)));
  if (!capabilities.resources) return;
  server.setRequestHandler("resources/list", (r) => run((_c, items) => itemLists.resources(items, r.params)));
  server.setRequestHandler("resources/templates/list", (r) => run((_c, items) => itemLists.templates(items, r.params)));
  server.setRequestHandler("resources/read", (r) => run((call, items) => readResource(deps, call, items, r.params)));
}
