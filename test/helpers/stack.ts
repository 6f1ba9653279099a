import { connectBus, type NatsConnection } from "@manifold/bus";
import { buildConnector, loadConnectorConfig, processSecrets, type Connector } from "@manifold/connector";
import { buildGateway, loadGatewayConfig, type Gateway } from "@manifold/gateway";
import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { buildRegistry, loadRegistryConfig, type Registry } from "@manifold/registry";
import { createLogger } from "@manifold/telemetry";
import type { AddressInfo } from "node:net";
import { AdminClient } from "./admin.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";
const level = (process.env.TEST_LOG_LEVEL ?? "silent") as "silent";

export async function startNats(): Promise<NatsServer> {
  return startNatsServer();
}

const urlOf = (address: AddressInfo | string | null) =>
  typeof address === "object" && address ? `http://127.0.0.1:${address.port}` : String(address);

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
  /** The environment the connector resolves `env:` credential references in. */
  secretsEnv?: Record<string, string>;
  /** Run the in-process connector (default); off when a test runs connector processes itself. */
  connector?: boolean;
  /** Collects every log line of every service (JSON strings), at level `info` and above. */
  logs?: string[];
}

export async function startStack(natsUrl: string, env: Record<string, string> = {}, options: StackOptions = {}): Promise<Stack> {
  // Suites about something other than access control run the gateway open; the access suite turns it on.
  const base = { NATS_URL: natsUrl, LOG_LEVEL: level, MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_AUTH: "off", ...env };
  const connections: NatsConnection[] = [];
  const logs = options.logs;
  const logger = (component: string) =>
    logs
      ? createLogger({ component, level: "info", destination: { write: (line: string) => void logs.push(line) } })
      : createLogger({ component, level });
  const bus = async (name: string) => {
    const nc = await connectBus({ url: natsUrl, name, logger: logger(name) });
    connections.push(nc);
    return nc;
  };

  const registry = await buildRegistry({
    config: loadRegistryConfig(base),
    logger: logger("registry"),
    nc: await bus("registry"),
  });
  const connector =
    options.connector === false
      ? undefined
      : await buildConnector({
          config: loadConnectorConfig(base),
          logger: logger("connector"),
          nc: await bus("connector"),
          secrets: processSecrets(options.secretsEnv ?? {}),
        });
  const gateway = await buildGateway({
    config: loadGatewayConfig(base),
    logger: logger("gateway"),
    nc: await bus("gateway"),
  });
  await Promise.all([registry.follower.caughtUp, connector?.follower.caughtUp, gateway.follower.caughtUp]);
  await registry.app.listen({ host: "127.0.0.1", port: 0 });
  await gateway.app.listen({ host: "127.0.0.1", port: 0 });
  const gatewayUrl = urlOf(gateway.app.server.address());

  const close = async () => {
    await gateway.close();
    await connector?.close();
    await registry.close();
    await Promise.all(connections.map((nc) => nc.close()));
  };
  return {
    admin: new AdminClient(urlOf(registry.app.server.address()), ADMIN_TOKEN),
    registry,
    connector,
    gateway,
    gatewayUrl,
    mcpUrl: (vs) => `${gatewayUrl}/mcp/${vs}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
