import { parseEnv, Port } from "@manifold/contracts";
import { portIsOpen } from "@manifold/nats-server";
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { z } from "zod";
import { adminCall } from "./adminClient.js";
import { startAllInOneNats } from "./allInOneBus.js";
import { DEMO_VIRTUAL_SERVER, EVERYTHING_BIN, demoCatalog } from "./demo.js";
import { serviceEntry, spawnService, type ServiceProcess } from "./processes.js";

const UpEnv = z.object({
  MANIFOLD_DATA_DIR: z.string().default(".manifold"),
  MANIFOLD_HOST: z.string().default("127.0.0.1"),
  MANIFOLD_NATS_PORT: Port.default(14222),
  MANIFOLD_GATEWAY_PORT: Port.default(8080),
  MANIFOLD_REGISTRY_PORT: Port.default(8081),
  MANIFOLD_CONNECTOR_PORT: Port.default(8082),
  MANIFOLD_DEMO_UPSTREAM_PORT: Port.default(13001),
  MANIFOLD_DEMO: z.enum(["on", "off"]).default("on"),
  LOG_LEVEL: z.string().default("info"),
});

async function adminToken(dataDir: string): Promise<string> {
  const file = join(dataDir, "admin-token");
  const existing = await readFile(file, "utf8").catch(() => undefined);
  if (existing?.trim()) return existing.trim();
  const token = randomBytes(24).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

async function waitForPort(port: number, host: string, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await portIsOpen(port, host)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not open port ${port}`);
}

/** Seeds the demo idempotently and returns the demo agent's API key (kept in the data folder). */
async function seed(registryUrl: string, token: string, httpUpstreamUrl: string, dataDir: string): Promise<string> {
  const { upstreams, virtualServer, consumer } = demoCatalog(httpUpstreamUrl);
  const call = async (method: string, path: string, body?: unknown) => {
    const json = await adminCall({ url: registryUrl, token }, method, path, body);
    if (json.discovery?.status === "failed") throw new Error(`discovery failed: ${json.discovery.error?.message}`);
    return json;
  };
  for (const { name, ...definition } of upstreams) {
    // The demo's upstreams follow this start's settings (another demo port, say): a restart converges, never conflicts.
    const known = await adminCall({ url: registryUrl, token }, "GET", `/v1/upstreams/${name}`).then(() => true, () => false);
    await (known ? call("PUT", `/v1/upstreams/${name}`, definition) : call("POST", "/v1/upstreams", { name, ...definition }));
  }
  await call("POST", "/v1/virtual-servers", virtualServer);
  await call("POST", "/v1/consumers", consumer);
  await call("POST", `/v1/virtual-servers/${virtualServer.name}/grants`, { grantId: consumer.name, subject: { consumer: consumer.name } });

  const keyFile = join(dataDir, "demo-key");
  const saved = (await readFile(keyFile, "utf8").catch(() => "")).trim();
  const keys = (await call("GET", `/v1/consumers/${consumer.name}`)).keys as { keyId: string }[];
  if (saved && keys.some((k) => saved.startsWith(`mk_${k.keyId}_`))) return saved;
  const { key } = await call("POST", `/v1/consumers/${consumer.name}/keys`, {});
  await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
  return key;
}

/**
 * The all-in-one: nats-server (JetStream under the data folder), registry, connector,
 * gateway and a demo upstream as child processes, seeded with a demo virtual server.
 * Runs until SIGINT/SIGTERM, then stops everything in reverse order.
 */
export async function up(env: Record<string, string | undefined>): Promise<void> {
  const config = parseEnv(UpEnv, env);
  const host = config.MANIFOLD_HOST;
  const dataDir = resolve(config.MANIFOLD_DATA_DIR);
  const logDir = join(dataDir, "logs");
  await mkdir(logDir, { recursive: true });
  const token = await adminToken(dataDir);

  const ports = {
    "nats-server": config.MANIFOLD_NATS_PORT,
    gateway: config.MANIFOLD_GATEWAY_PORT,
    registry: config.MANIFOLD_REGISTRY_PORT,
    connector: config.MANIFOLD_CONNECTOR_PORT,
    ...(config.MANIFOLD_DEMO === "on" ? { "demo upstream": config.MANIFOLD_DEMO_UPSTREAM_PORT } : {}),
  };
  for (const [what, port] of Object.entries(ports)) {
    if (await portIsOpen(port, host)) throw new Error(`port ${port} (${what}) is already in use; set MANIFOLD_* ports (see README)`);
  }

  const nats = await startAllInOneNats(dataDir, config.MANIFOLD_NATS_PORT, host);
  const children: ServiceProcess[] = [];
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    for (const child of [...children].reverse()) await child.stop();
    await nats.stop();
  };

  try {
    const common = { LOG_LEVEL: config.LOG_LEVEL, MANIFOLD_ADMIN_TOKEN: token };
    const demoUrl = `http://${host}:${config.MANIFOLD_DEMO_UPSTREAM_PORT}/mcp`;
    if (config.MANIFOLD_DEMO === "on") {
      const demo = spawnService("demo-upstream", EVERYTHING_BIN, ["streamableHttp"], { PORT: String(config.MANIFOLD_DEMO_UPSTREAM_PORT) }, join(logDir, "demo-upstream.log"));
      children.push(demo);
      await waitForPort(config.MANIFOLD_DEMO_UPSTREAM_PORT, host, "demo upstream");
    }
    const services = [
      ["registry", { REGISTRY_HOST: host, REGISTRY_PORT: String(config.MANIFOLD_REGISTRY_PORT) }, config.MANIFOLD_REGISTRY_PORT],
      ["connector", { CONNECTOR_HOST: host, CONNECTOR_PORT: String(config.MANIFOLD_CONNECTOR_PORT) }, config.MANIFOLD_CONNECTOR_PORT],
      ["gateway", { GATEWAY_HOST: host, GATEWAY_PORT: String(config.MANIFOLD_GATEWAY_PORT) }, config.MANIFOLD_GATEWAY_PORT],
    ] as const;
    for (const [name, env, port] of services) {
      const child = spawnService(name, serviceEntry(name), [], { ...common, ...nats.env(name), ...env }, join(logDir, `${name}.log`));
      children.push(child);
      await child.ready(`http://${host}:${port}/readyz`);
    }
    for (const child of children) {
      child.child.once("exit", (code) => {
        if (stopping) return;
        console.error(`manifold: ${child.name} exited unexpectedly (${code}); see ${join(logDir, `${child.name}.log`)}`);
        void stopAll().then(() => process.exit(1));
      });
    }

    const registryUrl = `http://${host}:${config.MANIFOLD_REGISTRY_PORT}`;
    const gatewayUrl = `http://${host}:${config.MANIFOLD_GATEWAY_PORT}`;
    const demoKey = config.MANIFOLD_DEMO === "on" ? await seed(registryUrl, token, demoUrl, dataDir) : undefined;
    printBanner({ gatewayUrl, registryUrl, dataDir, demoKey });
  } catch (error) {
    await stopAll();
    throw error;
  }

  await new Promise<void>((resolvePromise) => {
    const shutdown = () => {
      console.log("\nmanifold: stopping");
      void stopAll().then(resolvePromise);
    };
    process.once("SIGINT", shutdown);
    process.once("SIGTERM", shutdown);
  });
}

function printBanner({ gatewayUrl, registryUrl, dataDir, demoKey }: { gatewayUrl: string; registryUrl: string; dataDir: string; demoKey: string | undefined }) {
  const demo = demoKey !== undefined;
  const rel = relative(process.cwd(), dataDir) || ".";
  const endpoint = `${gatewayUrl}/mcp/${DEMO_VIRTUAL_SERVER}`;
  const lines = [
    "",
    "Manifold is up.",
    "",
    ...(demo
      ? [`  MCP endpoint (virtual server '${DEMO_VIRTUAL_SERVER}'):  ${endpoint}`, `  Demo agent's API key:  ${demoKey}   (also in ${rel}/demo-key)`]
      : []),
    `  Gateway:    ${gatewayUrl}/mcp/<virtual-server>`,
    `  Admin API:  ${registryUrl}/v1   (bearer token in ${rel}/admin-token, OpenAPI at ${registryUrl}/openapi.json)`,
    `  Data:       ${rel}/nats (JetStream), logs in ${rel}/logs/`,
    "",
  ];
  if (demo) {
    lines.push(
      "Client config (Claude Code, VS Code, Cursor: Streamable HTTP):",
      JSON.stringify({ mcpServers: { "manifold-demo": { type: "http", url: endpoint, headers: { Authorization: `Bearer ${demoKey}` } } } }, null, 2),
      "",
      "Clients that only speak stdio (Claude Desktop):",
      JSON.stringify(
        { mcpServers: { "manifold-demo": { command: "npx", args: ["-y", "mcp-remote", endpoint, "--header", `Authorization: Bearer ${demoKey}`] } } },
        null,
        2,
      ),
      "",
    );
  }
  lines.push("Stop with Ctrl-C; everything registered stays in the data folder.");
  console.log(lines.join("\n"));
}
