import { adminCall, serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, portIsOpen } from "@manifold/nats-server";
import { readFile } from "node:fs/promises";

export const ADMIN_TOKEN = "bench-admin-token-0123456789";
const FAST_UPSTREAM = new URL("./fastUpstream.js", import.meta.url).pathname;
const FLOOR = new URL("./floor.js", import.meta.url).pathname;

export interface Services {
  registryUrl: string;
  gatewayUrl: string;
  gateway: ServiceProcess;
  connector: ServiceProcess;
  all: ServiceProcess[];
}

/** The three services as separate processes, as in production. */
export async function startServices(natsUrl: string, connectorEnv: Record<string, string> = {}, profileDir?: string): Promise<Services> {
  const [registryPort, connectorPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const common = {
    NATS_URL: natsUrl,
    LOG_LEVEL: "warn",
    MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
  };
  // CPU profiles of every service, written when it exits (see docs/performance.md).
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const registry = spawnService("registry", serviceEntry("registry"), [], { ...common, REGISTRY_PORT: String(registryPort) }, undefined, nodeArgs);
  await registry.ready(`http://127.0.0.1:${registryPort}/readyz`);
  const connector = spawnService("connector", serviceEntry("connector"), [], { ...common, CONNECTOR_PORT: String(connectorPort), ...connectorEnv }, undefined, nodeArgs);
  await connector.ready(`http://127.0.0.1:${connectorPort}/readyz`);
  // One bench consumer opens every session, 1,000 of them at once in the memory scenario.
  const gatewayEnv = { ...common, GATEWAY_PORT: String(gatewayPort), GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: "100000" };
  const gateway = spawnService("gateway", serviceEntry("gateway"), [], gatewayEnv, undefined, nodeArgs);
  await gateway.ready(`http://127.0.0.1:${gatewayPort}/readyz`);
  return {
    registryUrl: `http://127.0.0.1:${registryPort}`,
    gatewayUrl: `http://127.0.0.1:${gatewayPort}`,
    gateway,
    connector,
    all: [gateway, connector, registry],
  };
}

export async function startFastUpstream(tools = 0): Promise<{ url: string; process: ServiceProcess }> {
  const port = await freePort();
  const process = spawnService("fast-upstream", FAST_UPSTREAM, [String(port), String(tools)], {});
  for (let i = 0; i < 100 && !(await portIsOpen(port)); i++) await new Promise((r) => setTimeout(r, 50));
  return { url: `http://127.0.0.1:${port}/mcp`, process };
}

/** The bare hops (see floor.ts) in front of `upstreamUrl`, as two processes like gateway and connector. */
export async function startFloor(natsUrl: string, upstreamUrl: string): Promise<{ url: string; all: ServiceProcess[] }> {
  const port = await freePort();
  const back = spawnService("floor-back", FLOOR, ["back", natsUrl, upstreamUrl], {});
  const front = spawnService("floor-front", FLOOR, ["front", String(port), natsUrl], {});
  const url = `http://127.0.0.1:${port}/mcp`;
  const probe = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: {} } });
  for (let i = 0; i < 100; i++) {
    const ok = await fetch(url, { method: "POST", body: probe }).then((r) => r.ok, () => false);
    if (ok) return { url, all: [front, back] };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the floor's front and back did not come up");
}

export const admin = (registryUrl: string, method: string, path: string, body?: unknown): Promise<any> =>
  adminCall({ url: registryUrl, token: ADMIN_TOKEN }, method, path, body);

/** Resident set size of a process, from /proc. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}
