import type { UpstreamTransportInput } from "@manifold/contracts";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const EVERYTHING_BIN = require.resolve("@modelcontextprotocol/server-everything/dist/index.js");

export const DEMO_VIRTUAL_SERVER = "demo";

/** The demo's one stdio command, as its upstream registers it and as the all-in-one lists it in MANIFOLD_STDIO_COMMANDS. */
export const DEMO_STDIO_COMMAND = [process.execPath, EVERYTHING_BIN, "stdio"] as const;

/** The demo catalog: server-everything twice (stdio and Streamable HTTP) and a curated subset of both. */
export function demoCatalog(httpUpstreamUrl: string) {
  const upstreams: { name: string; description: string; transport: UpstreamTransportInput }[] = [
    {
      name: "everything-stdio",
      description: "server-everything, spawned by the connector over stdio",
      transport: { type: "stdio", command: DEMO_STDIO_COMMAND[0], args: DEMO_STDIO_COMMAND.slice(1), env: {} },
    },
    {
      name: "everything-http",
      description: "server-everything over Streamable HTTP",
      transport: { type: "streamable-http", url: httpUpstreamUrl, headers: {} },
    },
  ];
  const virtualServer = {
    name: DEMO_VIRTUAL_SERVER,
    description: "Demo: a curated subset of two upstreams",
    tools: [
      { upstream: "everything-stdio", tool: "echo" },
      { upstream: "everything-stdio", tool: "get-sum" },
      { upstream: "everything-stdio", tool: "get-tiny-image" },
      { upstream: "everything-http", tool: "echo" },
      { upstream: "everything-http", tool: "get-structured-content" },
    ],
  };
  const consumer = { name: "demo-agent", description: "The all-in-one demo's agent" };
  return { upstreams, virtualServer, consumer };
}
