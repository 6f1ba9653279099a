import type { NatsConnection } from "@manifold/bus";
import { ManifoldError } from "@manifold/contracts";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import type { GatewayCatalog } from "./catalog.js";
import { JsonRpcError, toJsonRpcError } from "./jsonRpc.js";
import { forwardToolCall } from "./toolCalls.js";

export interface McpServerOptions {
  virtualServer: string;
  catalog: GatewayCatalog;
  nc: NatsConnection;
  callTimeoutMs: number;
  version: string;
}

/**
 * The MCP server behind one session of a virtual server. tools/list is answered from the
 * catalog without leaving the process; tools/call is forwarded over the bus.
 */
export function createMcpServer({ virtualServer, catalog, nc, callTimeoutMs, version }: McpServerOptions): Server {
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

  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const name = request.params.name;
    const route = viewOrThrow().routes.get(name);
    if (!route) {
      throw new JsonRpcError(-32602, `unknown tool '${name}': virtual server '${virtualServer}' exposes no tool of that name`, {
        code: "unknown_tool",
        tool: name,
      });
    }
    try {
      return await forwardToolCall(nc, route, request.params, callTimeoutMs);
    } catch (error) {
      throw toJsonRpcError(error);
    }
  });
  return server;
}
