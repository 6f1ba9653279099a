import { busOptionsOf, connectBus, type NatsConnection } from "@manifold/bus";
import { parseEnv, BusEnv } from "@manifold/contracts";
import { buildConnector, loadConnectorConfig, processSecrets, type Connector } from "@manifold/connector";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import {
  startNatsCluster,
  startNatsServer,
  type CredentialRole,
  type Identity,
  type NatsCluster,
  type NatsClusterOptions,
  type NatsServer,
  type NatsServerOptions,
} from "@manifold/nats-server";
import { buildRegistry, loadRegistryConfig, type Registry } from "@manifold/registry";
import { createLogger } from "@manifold/telemetry";
import { appendFileSync } from "node:fs";
import type { AddressInfo, Server } from "node:net";
import { Server as TlsServer } from "node:tls";
import { AdminClient } from "./admin.js";
import { TEST_STDIO_COMMANDS } from "./upstreams.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";
const level = (process.env.TEST_LOG_LEVEL ?? "silent") as "silent";

/** A single server or a cluster: either gives each role the environment it connects with. */
export type Bus = NatsServer | NatsCluster;

/** Servers and clusters started here, so `startStack(nats.url)` / `startStack(cluster.urls)` find each role's credentials. */
const servers = new Map<string, Bus>();

/** A nats-server with auth on (each role its own nkey), plus an `operator` identity for tests that inspect the bus. */
export async function startNats(options: NatsServerOptions = {}): Promise<NatsServer> {
  // TEST_NATS_VIOLATIONS=<file>: nats-server's permission refusals (and whose key is whose) are
  // appended there, to find a subject a role lacks after a change (see docs/security.md).
  const violations = process.env.TEST_NATS_VIOLATIONS;
  const onLog = violations ? (line: string) => void (/Violation/.test(line) && appendFileSync(violations, `${line}\n`)) : undefined;
  const nats = await startNatsServer({ operator: true, ...(onLog ? { onLog } : {}), ...options });
  if (violations) appendFileSync(violations, `${JSON.stringify(Object.fromEntries(Object.entries(nats.credentials).map(([r, c]) => [c!.publicKey, r])))}\n`);
  servers.set(nats.url, nats);
  return nats;
}

/** A three-node cluster with auth on, like `startNats`: each role its own nkey, plus `operator`. */
export async function startCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const cluster = await startNatsCluster({ operator: true, ...options });
  servers.set(cluster.urls, cluster);
  return cluster;
}

const serverOf = (nats: Bus | string): Bus | undefined => (typeof nats === "string" ? servers.get(nats) : nats);

/** The environment a service of `role` gets: where NATS is and its own credential. */
export const busEnv = (nats: Bus | string, role: Identity): Record<string, string> =>
  serverOf(nats)?.env(role) ?? { NATS_URL: String(nats) };

/** A connection with one role's credential, as that service would open it. */
export const connectAs = (nats: Bus | string, role: CredentialRole, name: string = role): Promise<NatsConnection> =>
  connectBus({
    ...busOptionsOf(parseEnv(BusEnv, busEnv(nats, role))),
    ...(role === "operator" ? {} : { role }),
    name,
    logger: createLogger({ component: name, level }),
  });

/** A listener's URL: HTTPS when the service was given a certificate (`…_TLS_CERT_FILE`). */
const urlOf = (server: Server) => {
  const address = server.address() as AddressInfo | string | null;
  return typeof address === "object" && address ? `${server instanceof TlsServer ? "https" : "http"}://127.0.0.1:${address.port}` : String(address);
};

export interface Stack extends AsyncDisposable {
  readonly admin: AdminClient;
  readonly registry: Registry;
  readonly connector: Connector | undefined;
  readonly gateway: Gateway;
  readonly gatewayUrl: string;
  /** The MCP endpoint of a virtual server. */
  mcpUrl(virtualServer: string): string;
  close(): Promise<void>;
}

/**
 * Registry, one connector and the gateway in this process, each with its own NATS
 * connection exactly as in production, listening on free ports.
 */
export interface StackOptions {
  /** The environment the connector and the gateway resolve `env:` credential references in. */
  secretsEnv?: Record<string, string>;
  /** Run the in-process connector (default); off when a test runs connector processes itself. */
  connector?: boolean;
  /** Collects every log line of every service (JSON strings), at level `info` and above. */
  logs?: string[];
}

/** `nats`: a server or cluster (or the URL(s) of one started by `startNats`/`startCluster`); each service connects with its own role's credential. */
export async function startStack(nats: Bus | string, env: Record<string, string> = {}, options: StackOptions = {}): Promise<Stack> {
  // Suites about something other than access control run the gateway open; the access suite turns it on.
  const common = { LOG_LEVEL: level, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_AUTH: "off", MANIFOLD_STDIO_COMMANDS: TEST_STDIO_COMMANDS, ...env };
  const configOf = (role: CredentialRole) => ({ ...busEnv(nats, role), ...common });
  const connections: NatsConnection[] = [];
  const logs = options.logs;
  const logger = (component: string) =>
    logs
      ? createLogger({ component, level: "info", destination: { write: (line: string) => void logs.push(line) } })
      : createLogger({ component, level });
  const bus = async (role: "registry" | "connector" | "gateway", config: Parameters<typeof busOptionsOf>[0]) => {
    const nc = await connectBus({ ...busOptionsOf(config), role, name: role, logger: logger(role) });
    connections.push(nc);
    return nc;
  };

  const registryConfig = loadRegistryConfig(configOf("registry"));
  const registry = await buildRegistry({ config: registryConfig, logger: logger("registry"), nc: await bus("registry", registryConfig) });
  const connector =
    options.connector === false
      ? undefined
      : await buildConnector({
          config: loadConnectorConfig(configOf("connector")),
          logger: logger("connector"),
          nc: await bus("connector", loadConnectorConfig(configOf("connector"))),
          secrets: processSecrets(options.secretsEnv ?? {}),
        });
  const gatewayConfig = loadGatewayConfig(configOf("gateway"));
  const gateway = await buildGateway({
    config: gatewayConfig,
    logger: logger("gateway"),
    nc: await bus("gateway", gatewayConfig),
    env: { ...configOf("gateway"), ...options.secretsEnv },
  });
  await Promise.all([registry.follower.caughtUp, connector?.follower.caughtUp, gateway.follower.caughtUp]);
  await registry.app.listen({ host: "127.0.0.1", port: 0 });
  await registry.metricsApp.listen({ host: "127.0.0.1", port: 0 });
  // A fixed port when the test named one (a public URL registered at an authorization server points to it).
  await gateway.app.listen({ host: "127.0.0.1", port: env.GATEWAY_PORT ? gatewayConfig.GATEWAY_PORT : 0 });
  await gateway.metricsApp.listen({ host: "127.0.0.1", port: 0 });
  const gatewayUrl = urlOf(gateway.app.server);

  const close = async () => {
    await gateway.close();
    await connector?.close();
    await registry.close();
    await Promise.all(connections.map((nc) => nc.close()));
  };
  return {
    admin: new AdminClient(urlOf(registry.app.server), ADMIN_TOKEN),
    registry,
    connector,
    gateway,
    gatewayUrl,
    mcpUrl: (vs) => `${gatewayUrl}/mcp/${vs}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
