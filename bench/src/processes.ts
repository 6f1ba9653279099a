import { adminCall, CALL_PATH_NODE_FLAGS, serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { busOptionsOf, connectBus, type NatsConnection } from "@manifold/bus";
import { BusEnv, parseEnv, type BusRole } from "@manifold/contracts";
import { freePort, portIsOpen, type NatsServer } from "@manifold/nats-server";
import { createLogger } from "@manifold/telemetry";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export const ADMIN_TOKEN = "bench-admin-token-0123456789";
const FAST_UPSTREAM = new URL("./fastUpstream.js", import.meta.url).pathname;
const FLOOR = new URL("./floor.js", import.meta.url).pathname;
const MCP_PROXY = join(dirname(createRequire(import.meta.url).resolve("mcp-proxy/package.json")), "dist", "bin", "mcp-proxy.mjs");

export interface Services {
  registryUrl: string;
  gatewayUrl: string;
  gateway: ServiceProcess;
  connector: ServiceProcess;
  all: ServiceProcess[];
}

/** How one service is run: under a launcher (valgrind), with more Node flags, given longer to start, its output kept. */
export interface Launch {
  launcher?: readonly string[];
  logFile?: string;
  nodeArgs?: readonly string[];
  readyTimeoutMs?: number;
}

/** The three services as separate processes, as in production. */
export async function startServices(
  nats: NatsServer,
  env: { connector?: Record<string, string>; gateway?: (gatewayUrl: string) => Record<string, string> } = {},
  profileDir?: string,
  launch: { gateway?: Launch; connector?: Launch } = {},
): Promise<Services> {
  const [registryPort, connectorPort, gatewayPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const common = {
    LOG_LEVEL: "warn",
    MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
  };
  // CPU profiles of every service, written when it exits (see docs/performance.md).
  const nodeArgs = [...(process.env.BENCH_NODE_ARGS ? process.env.BENCH_NODE_ARGS.split(" ") : []), ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])];
  const registry = spawnService("registry", serviceEntry("registry"), [], { ...common, ...nats.env("registry"), REGISTRY_PORT: String(registryPort), REGISTRY_METRICS_PORT: String(await freePort()) }, undefined, nodeArgs);
  await registry.ready(`http://127.0.0.1:${registryPort}/readyz`);
  const { connector: c = {}, gateway: g = {} } = launch;
  const connector = spawnService("connector", serviceEntry("connector"), [], { ...common, ...nats.env("connector"), CONNECTOR_PORT: String(connectorPort), ...env.connector }, c.logFile, [...nodeArgs, ...(c.nodeArgs ?? [])], c.launcher);
  await connector.ready(`http://127.0.0.1:${connectorPort}/readyz`, c.readyTimeoutMs);
  // One bench consumer opens every session (1,000 at once in the memory scenario) and makes every call (thousands a second).
  const gatewayEnv = { ...common, ...nats.env("gateway"), GATEWAY_PORT: String(gatewayPort), GATEWAY_METRICS_PORT: String(await freePort()), GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: "100000", GATEWAY_MAX_REQUESTS_PER_S_PER_PRINCIPAL: "1000000", ...env.gateway?.(gatewayUrl) };
  const gateway = spawnService("gateway", serviceEntry("gateway"), [], gatewayEnv, g.logFile, [...nodeArgs, ...(g.nodeArgs ?? [])], g.launcher);
  await gateway.ready(`http://127.0.0.1:${gatewayPort}/readyz`, g.readyTimeoutMs);
  return {
    registryUrl: `http://127.0.0.1:${registryPort}`,
    gatewayUrl,
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

/**
 * The peer: mcp-proxy in front of the same echo tool. mcp-proxy serves a stdio server over
 * Streamable HTTP (both eras), so the echo runs as `fastUpstream.js --stdio` under it: one proxy
 * process and one upstream process, as a user would run it for one upstream. No event store
 * (request/response only, as Manifold keeps none either).
 */
export async function startMcpProxy(): Promise<{ url: string; process: ServiceProcess; upstreamPid: () => Promise<number> }> {
  const port = await freePort();
  const args = ["--port", String(port), "--host", "127.0.0.1", "--server", "stream", "--no-eventStore", "--", process.execPath, FAST_UPSTREAM, "--stdio"];
  const proxy = spawnService("mcp-proxy", MCP_PROXY, args, {});
  for (let i = 0; i < 200 && !(await portIsOpen(port)); i++) await new Promise((r) => setTimeout(r, 50));
  // The echo is mcp-proxy's child: its CPU is the upstream's share of each call.
  const upstreamPid = async () => {
    const children = (await readFile(`/proc/${proxy.child.pid}/task/${proxy.child.pid}/children`, "utf8")).trim().split(/\s+/).map(Number);
    if (children.length !== 1 || !children[0]) throw new Error(`mcp-proxy should run one upstream process, runs ${JSON.stringify(children)}`);
    return children[0];
  };
  return { url: `http://127.0.0.1:${port}/mcp`, process: proxy, upstreamPid };
}

/** The bare hops (see floor.ts) in front of `upstreamUrl`, as two processes like gateway and connector. */
export async function startFloor(
  nats: NatsServer,
  upstreamUrl: string,
  duties = false,
  profileDir?: string,
  launch: { front?: Launch; back?: Launch } = {},
): Promise<{ url: string; all: ServiceProcess[] }> {
  const port = await freePort();
  // The runtime gateway and connector have: without it a floor too was now and then caught keeping
  // its calls' objects through young collections (1.4 KB a call promoted), a slower yardstick.
  const nodeArgs = [...CALL_PATH_NODE_FLAGS, ...(profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [])];
  const mode: Record<string, string> = duties ? { FLOOR_DUTIES: "1" } : {};
  const { front: f = {}, back: b = {} } = launch;
  // With the same identities and permissions as connector and gateway: the floor pays what they pay.
  const back = spawnService(duties ? "duties-back" : "floor-back", FLOOR, ["back", nats.url, upstreamUrl], { ...nats.env("connector"), ...mode }, b.logFile, [...nodeArgs, ...(b.nodeArgs ?? [])], b.launcher);
  const front = spawnService(duties ? "duties-front" : "floor-front", FLOOR, ["front", String(port), nats.url], { ...nats.env("gateway"), ...mode }, f.logFile, [...nodeArgs, ...(f.nodeArgs ?? [])], f.launcher);
  const url = `http://127.0.0.1:${port}/mcp`;
  const probe = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: {} } });
  // Up to 20 s (two cold Node processes on a busy machine), or as long as a launch allows (valgrind).
  const probes = Math.max(400, ...[f.readyTimeoutMs ?? 0, b.readyTimeoutMs ?? 0].map((ms) => Math.ceil(ms / 50)));
  for (let i = 0; i < probes; i++) {
    const ok = await fetch(url, { method: "POST", body: probe }).then((r) => r.ok, () => false);
    if (ok) return { url, all: [front, back] };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the floor's front and back did not come up");
}

/** A connection with one role's identity, as that service opens it. */
export const connectRole = (nats: NatsServer, role: BusRole, name: string): Promise<NatsConnection> =>
  connectBus({ ...busOptionsOf(parseEnv(BusEnv, nats.env(role))), role, name, logger: createLogger({ component: name, level: "silent" }) });

/**
 * The bench's catalog: the fast upstream as `fast`, its echo tool on the virtual server `bench`,
 * and the `bench` consumer with a key and a grant, so the gateway runs as in production (every
 * request authenticated and checked against a grant). `grant` grants the consumer another virtual server.
 */
export async function benchCatalog(registryUrl: string, fastUrl: string): Promise<{ exposed: string; gatewayKey: string; grant: (vs: string) => Promise<unknown> }> {
  await admin(registryUrl, "POST", "/v1/upstreams", { name: "fast", transport: { type: "streamable-http", url: fastUrl } });
  const bench = await admin(registryUrl, "POST", "/v1/virtual-servers", { name: "bench", tools: [{ upstream: "fast", tool: "echo" }] });
  await admin(registryUrl, "POST", "/v1/consumers", { name: "bench" });
  const gatewayKey = (await admin(registryUrl, "POST", "/v1/consumers/bench/keys", {})).key as string;
  const grant = (vs: string) => admin(registryUrl, "POST", `/v1/virtual-servers/${vs}/grants`, { grantId: "bench", subject: { consumer: "bench" } });
  await grant("bench");
  return { exposed: bench.tools[0].exposedName as string, gatewayKey, grant };
}

export const admin = (registryUrl: string, method: string, path: string, body?: unknown): Promise<any> =>
  adminCall({ url: registryUrl, token: ADMIN_TOKEN }, method, path, body);

/** Resident set size of a process, from /proc. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}
