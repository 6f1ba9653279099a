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
import type { CallDeps } from "./callPipeline.js";
import { callOf } from "./callContext.js";
import type { ItemView } from "./itemCatalog.js";
import { complete, getPrompt, itemLists, readResource, subscribeUpstream } from "./itemRequests.js";
import { toJsonRpcError } from "./jsonRpc.js";
import type { McpCall } from "./mcpCall.js";
import { viewOf } from "./mcpServer.js";
import type { ResourceUpdates } from "./resourceUpdates.js";

type Capabilities = ItemView["capabilities"];
type AuthInfo = Parameters<typeof callOf>[0];
/** Runs a handler with the call's current view of the items (without what its grants deny); failures become the JSON-RPC error the lane writes. */
const served = <T>(deps: CallDeps, authInfo: AuthInfo, handle: (call: McpCall, items: ItemView) => T | Promise<T>, asError: (e: unknown) => unknown = toJsonRpcError) =>
  (async () => {
    const { call } = callOf(authInfo);
    return handle(call, viewOf(deps, call).itemsFor(call.access.deniedItems));
  })().catch((error: unknown) => {
    throw asError(toJsonRpcError(error));
  });

/**
 * Prompts, resources, templates and completions on a 2025-era session's 1.x server, for the kinds
 * the virtual server exposes (`capabilities`, fixed when the session opens). Subscriptions are the
 * session's: the upstream is asked once, updates reach this session while it lasts.
 */
export function serveLegacyItems(server: LegacyServer, deps: CallDeps, capabilities: Capabilities, updates: ResourceUpdates): void {
  if (capabilities.prompts) {
    server.setRequestHandler(ListPromptsRequestSchema, (_r, extra) => served(deps, extra.authInfo, (_c, items) => itemLists.prompts(items)) as never);
    server.setRequestHandler(GetPromptRequestSchema, (r, extra) => served(deps, extra.authInfo, (call, items) => getPrompt(deps, call, items, r.params)) as never);
  }
  if (capabilities.completions) {
    server.setRequestHandler(CompleteRequestSchema, (r, extra) => served(deps, extra.authInfo, (call, items) => complete(deps, call, items, r.params)) as never);
  }
  if (!capabilities.resources) return;
  server.setRequestHandler(ListResourcesRequestSchema, (_r, extra) => served(deps, extra.authInfo, (_c, items) => itemLists.resources(items)) as never);
  server.setRequestHandler(ListResourceTemplatesRequestSchema, (_r, extra) => served(deps, extra.authInfo, (_c, items) => itemLists.templates(items)) as never);
  server.setRequestHandler(ReadResourceRequestSchema, (r, extra) => served(deps, extra.authInfo, (call, items) => readResource(deps, call, items, r.params)) as never);
  const subscriptions = new Map<string, () => void>();
  server.setRequestHandler(SubscribeRequestSchema, (r, extra) =>
    served(deps, extra.authInfo, async (call, items) => {
      const uri = r.params.uri;
      if (subscriptions.has(uri)) return {};
      const route = await subscribeUpstream(deps, call, items, uri);
      subscriptions.set(uri, updates.listen(route.upstream, route.original, () => void server.sendResourceUpdated({ uri }).catch(() => undefined)));
      return {};
    }),
  );
  server.setRequestHandler(UnsubscribeRequestSchema, (r) => {
    subscriptions.get(r.params.uri)?.();
    subscriptions.delete(r.params.uri);
    return {};
  });
  server.onclose = () => {
    for (const stop of subscriptions.values()) stop();
    subscriptions.clear();
  };
}

/**
 * The same on a 2026-07-28 request's 2.x server. Resource subscriptions arrive in
 * `subscriptions/listen` (see `ModernServers`), not as requests.
 */
export function serveModernItems(server: ModernServer, deps: CallDeps, capabilities: Capabilities, authInfo: AuthInfo, asError: (e: unknown) => unknown): void {
  const run = <T>(handle: (call: McpCall, items: ItemView) => T | Promise<T>) => served(deps, authInfo, handle, asError) as never;
  if (capabilities.prompts) {
    server.setRequestHandler("prompts/list", () => run((_c, items) => itemLists.prompts(items)));
    server.setRequestHandler("prompts/get", (r) => run((call, items) => getPrompt(deps, call, items, r.params)));
  }
  if (capabilities.completions) server.setRequestHandler("completion/complete", (r) => run((call, items) => complete(deps, call, items, r.params)));
  if (!capabilities.resources) return;
  server.setRequestHandler("resources/list", () => run((_c, items) => itemLists.resources(items)));
  server.setRequestHandler("resources/templates/list", () => run((_c, items) => itemLists.templates(items)));
  server.setRequestHandler("resources/read", (r) => run((call, items) => readResource(deps, call, items, r.params)));
}
