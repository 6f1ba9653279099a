import { ManifoldError, isRecord, paramHeaderMismatch, paramHeadersOf, type ParamHeader } from "@manifold/contracts";
import type { FastifyRequest } from "fastify";
import { isDenied, type GatewayCatalog, type ToolRoute } from "./catalog.js";
import type { McpCall } from "./mcpCall.js";

/** Each pinned tool's `x-mcp-header` declarations, read once per route (a catalog change makes new routes). */
const declarations = new WeakMap<ToolRoute, readonly ParamHeader[]>();

function declaredOf(route: ToolRoute): readonly ParamHeader[] {
  let declared = declarations.get(route);
  if (!declared) declarations.set(route, (declared = paramHeadersOf(route.inputSchema)));
  return declared;
}

/**
 * A 2026-07-28 tools/call's `Mcp-Param-*` headers against its arguments, as the transport asks
 * of servers: the headers exist so that proxies and firewalls before the gateway may route and
 * decide on them, and a request that shows them one value and the tool another is refused with
 * `HeaderMismatch` (400, -32020), whichever lane would serve it. Before, neither checked: the
 * low-level 2.x server the gateway uses leaves it to `McpServer`, and the connector mirrors the
 * body's values upstream. A tool the caller may not see is left to the lanes' "unknown tool", so
 * its declarations tell nothing.
 */
export function mustMatchParamHeaders(catalog: GatewayCatalog, call: McpCall, headers: FastifyRequest["headers"]): void {
  const params = (call.body as { params?: unknown }).params;
  if (!isRecord(params) || typeof params.name !== "string") return;
  const route = catalog.view(call.virtualServer, call.environment)?.routes.get(params.name);
  if (!route || isDenied(route, call.access.denied)) return;
  const declared = declaredOf(route);
  if (declared.length === 0) return;
  const mismatch = paramHeaderMismatch(declared, params.arguments, (name) => {
    const value = headers[name];
    return typeof value === "string" ? value : undefined;
  });
  if (mismatch) throw new ManifoldError("header_mismatch", `the request headers and body disagree: ${mismatch.reason}`, { mismatch: { header: mismatch.header } });
}
