import { expect } from "vitest";
import { grantedConsumers, registerUpstreams } from "./catalog.js";
import { modernRequest } from "./modernRequests.js";
import type { Stack } from "./stack.js";

/** A virtual server `v` over the modern fixture's `echo` and `grow`, and ann's key to it. */
export interface GrowingServer {
  names: Record<string, string>;
  key: string;
  /** Whether the gateway's tool list has `echo` take `property` (added by the fixture's `grow`). */
  echoTakes(property: string): Promise<boolean>;
}

/**
 * Registers the modern fixture at `url` as `m` under a virtual server that adopts compatible changes
 * at once (an optional property), so that only the upstream's own list change explains a new one.
 */
export async function growingServer(stack: Stack, url: string): Promise<GrowingServer> {
  await registerUpstreams(stack, { name: "m", transport: { type: "streamable-http", url } });
  const res = await stack.admin.post("/v1/virtual-servers", { name: "v", driftPolicy: "auto-compatible", tools: [{ upstream: "m", tool: "echo" }, { upstream: "m", tool: "grow" }] });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const names: Record<string, string> = Object.fromEntries(res.body.tools.map((t: { upstream: string; tool: string; exposedName: string }) => [`${t.upstream}/${t.tool}`, t.exposedName]));
  const key = (await grantedConsumers(stack, "v", ["ann"])).ann!;
  const echoTakes = async (property: string) => {
    const tools = (await modernRequest(stack.mcpUrl("v"), key, "tools/list", {})).result?.tools as { name: string; inputSchema: { properties?: Record<string, unknown> } }[] | undefined;
    return tools?.find((t) => t.name === names["m/echo"])?.inputSchema.properties?.[property] !== undefined;
  };
  return { names, key, echoTakes };
}
