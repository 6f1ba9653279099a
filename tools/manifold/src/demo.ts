import type { UpstreamTransportInput } from "@manifold/contracts";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const EVERYTHING_BIN = require.resolve("@modelcontextprotocol/server-everything/dist/index.js");

export const DEMO_VIRTUAL_SERVER = "demo";

/** The demo catalog: server-everything twice (stdio and Streamable HTTP) and a curated subset of both. */
export function demoCatalog(httpUpstreamUrl: string) {
  const upstreams: { name: string; description: string; transport: UpstreamTransportInput }[] = [
    {
      name: "everything-stdio",
      description: "server-everything, spawned by the connector over stdio",
      transport: { type: "stdio", command: process.execPath, args: [EVERYTHING_BIN, "stdio"], env: {} },
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
