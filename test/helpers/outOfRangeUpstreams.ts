import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import type { NatsServer } from "@manifold/nats-server";
import { grantedConsumers, registerUpstreams, type UpstreamSpec } from "./catalog.js";
import { legacyAgent, modernAgent, type Agent } from "./eraAgents.js";
import { MODERN } from "./modernRequests.js";
import type { Stack } from "./stack.js";

const FIXTURE = new URL("../fixtures/outOfRangeNumbers.mjs", import.meta.url).pathname;
const MODERN_FIXTURE = new URL("../fixtures/outOfRangeNumbersModern.mjs", import.meta.url).pathname;

/** `fixture` serving Streamable HTTP in its own process: the process (kill it at the end) and the URL it printed. */
async function spawnHttp(fixture: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [fixture], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  return { child, url: line.toString().trim() };
}

/**
 * The upstream of `fixtures/outOfRangeNumbers.mjs` registered on `stack` twice: as `http`
 * (Streamable HTTP, its own process) and as `stdio` (a 2025 stdio upstream, the connector's own
 * process). With `modern`, its 2026-07-28 sibling (`fixtures/outOfRangeNumbersModern.mjs`, on the
 * 2.x server package) too, as `modern-http` and `modern-stdio`. The HTTP upstreams' processes are
 * returned: kill them at the end (`closeSuite`).
 */
export async function registerOutOfRangeUpstreams(stack: Stack, { modern = false } = {}): Promise<ChildProcess[]> {
  const served = [await spawnHttp(FIXTURE), ...(modern ? [await spawnHttp(MODERN_FIXTURE)] : [])];
  const upstreams: UpstreamSpec[] = [
    { name: "http", transport: { type: "streamable-http", url: served[0]!.url } },
    { name: "stdio", transport: { type: "stdio", command: process.execPath, args: [FIXTURE, "stdio"], protocol: "2025" } },
  ];
  if (modern) {
    upstreams.push(
      { name: "modern-http", transport: { type: "streamable-http", url: served[1]!.url, protocol: MODERN } },
      { name: "modern-stdio", transport: { type: "stdio", command: process.execPath, args: [MODERN_FIXTURE, "stdio"], protocol: MODERN } },
    );
  }
  await registerUpstreams(stack, ...upstreams);
  return served.map(({ child }) => child);
}

/** A 1.32.2 (2025-11-25) and a 2.4 (2026-07-28) agent of a consumer `ada` granted `virtualServer`. */
export async function bothEraAgents(stack: Stack, virtualServer: string): Promise<Agent[]> {
  const key = (await grantedConsumers(stack, virtualServer, ["ada"])).ada!;
  return [await legacyAgent(stack.mcpUrl(virtualServer), key), await modernAgent(stack.mcpUrl(virtualServer), key)];
}

/** Ends what such a suite started: its agents, the stack, the HTTP upstreams' processes, NATS. */
export async function closeSuite(started: { agents?: Agent[] | undefined; stack?: Stack | undefined; children?: ChildProcess[] | undefined; nats?: NatsServer | undefined }): Promise<void> {
  for (const agent of started.agents ?? []) await agent.close();
  await started.stack?.close();
  for (const child of started.children ?? []) child.kill();
  await started.nats?.stop();
}
