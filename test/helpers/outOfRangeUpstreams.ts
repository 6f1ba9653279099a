import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import type { NatsServer } from "@manifold/nats-server";
import { grantedConsumers, registerUpstreams } from "./catalog.js";
import { legacyAgent, modernAgent, type Agent } from "./eraAgents.js";
import type { Stack } from "./stack.js";

const FIXTURE = new URL("../fixtures/outOfRangeNumbers.mjs", import.meta.url).pathname;

/**
 * The upstream of `fixtures/outOfRangeNumbers.mjs` registered on `stack` twice: as `http`
 * (Streamable HTTP, its process returned: kill it at the end) and as `stdio` (a 2025 stdio upstream,
 * the connector's own process).
 */
export async function registerOutOfRangeUpstreams(stack: Stack): Promise<ChildProcess> {
  const child = spawn(process.execPath, [FIXTURE], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  await registerUpstreams(
    stack,
    { name: "http", transport: { type: "streamable-http", url: line.toString().trim() } },
    { name: "stdio", transport: { type: "stdio", command: process.execPath, args: [FIXTURE, "stdio"], protocol: "2025" } },
  );
  return child;
}

/** A 1.32.2 (2025-11-25) and a 2.4 (2026-07-28) agent of a consumer `ada` granted `virtualServer`. */
export async function bothEraAgents(stack: Stack, virtualServer: string): Promise<Agent[]> {
  const key = (await grantedConsumers(stack, virtualServer, ["ada"])).ada!;
  return [await legacyAgent(stack.mcpUrl(virtualServer), key), await modernAgent(stack.mcpUrl(virtualServer), key)];
}

/** Ends what such a suite started: its agents, the stack, the HTTP upstream's process, NATS. */
export async function closeSuite(started: { agents?: Agent[] | undefined; stack?: Stack | undefined; child?: ChildProcess | undefined; nats?: NatsServer | undefined }): Promise<void> {
  for (const agent of started.agents ?? []) await agent.close();
  await started.stack?.close();
  started.child?.kill();
  await started.nats?.stop();
}
