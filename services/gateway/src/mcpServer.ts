import type { NatsConnection } from "@manifold/bus";
import { ManifoldError } from "@manifold/contracts";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { HttpHeader } from "@manifold/contracts";
import { parseUpstreamHeaders } from "./upstreamHeaders.js";
import type { GatewayCatalog } from "./catalog.js";
import { JsonRpcError, toJsonRpcError } from "./jsonRpc.js";
import { forwardToolCall } from "./toolCalls.js";

export interface McpServerOptions {
  virtualServer: string;
  catalog: GatewayCatalog;
  nc: NatsConnection;
  version: string;
}

/**
 * The MCP server behind one session of a virtual server. tools/list is answered from the
 * catalog without leaving the process; tools/call is forwarded over the bus.
 */
export function createMcpServer({ virtualServer, catalog, nc, version }: McpServerOptions): Server {
  const server = new Server(
    { name: `manifold-${virtualServer}`, version },
    { capabilities: { tools: { listChanged: true } } },
  );

  const viewOrThrow = () => {
    const view = catalog.view(virtualServer);
    if (!view) throw toJsonRpcError(new ManifoldError("unknown_virtual_server", `virtual server '${virtualServer}' does not exist`));
    return view;
  };

  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: viewOrThrow().tools }));

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const name = request.params.name;
    const route = viewOrThrow().routes.get(name);
    if (!route) {
      throw new JsonRpcError(-32602, `unknown tool '${name}': virtual server '${virtualServer}' exposes no tool of that name`, {
        code: "unknown_tool",
        tool: name,
      });
    }
    try {
      // Already validated at the HTTP edge; read again here because only headers reach the handler.
      const passthrough = parseUpstreamHeaders(extra.requestInfo?.headers[HttpHeader.upstreamHeaders], catalog.projection);
      return await forwardToolCall(nc, route, request.params, {
        signal: extra.signal,
        upstreamHeaders: passthrough?.get(route.upstream),
        sendNotification: extra.sendNotification,
      });
    } catch (error) {
      throw toJsonRpcError(error);
    }
  });
  return server;
}
