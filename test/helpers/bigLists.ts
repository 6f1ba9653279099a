import type { NatsServer } from "@manifold/nats-server";
import { startMutableUpstream, type MutableUpstream } from "../fixtures/mutableUpstream.js";
import { createVirtualServer, registerUpstreams } from "./catalog.js";
import { startNats, startStack, type Stack } from "./stack.js";

/** A stack (auth required) serving virtual server `big`: `tools` tools of a 10 KB description each, ~6 MB a list at 600. */
export async function startBigListStack(tools: number): Promise<{ nats: NatsServer; upstream: MutableUpstream; stack: Stack; names: Record<string, string> }> {
  // Large tool lists: one upstream's list travels the bus whole (discovery), so its messages may be larger.
  const nats = await startNats({ extraConfig: ["max_payload: 8MB"] });
  const description = "d".repeat(10_000);
  const upstream = await startMutableUpstream(Array.from({ length: tools }, (_, i) => ({ name: `tool_${i}`, description, inputSchema: { type: "object" as const } })));
  const stack = await startStack(nats.url, { GATEWAY_AUTH: "required" });
  await registerUpstreams(stack, { name: "big", transport: { type: "streamable-http", url: upstream.url } });
  const names = await createVirtualServer(stack, "big", Array.from({ length: tools }, (_, i) => ({ upstream: "big", tool: `tool_${i}` })));
  return { nats, upstream, stack, names };
}
