import type { NatsConnection } from "@manifold/bus";
import type { NatsServer } from "@manifold/nats-server";
import { buildRegistry, loadRegistryConfig, type Registry } from "@manifold/registry";
import { createLogger } from "@manifold/telemetry";
import type { AddressInfo } from "node:net";
import { AdminClient } from "./admin.js";
import { afterAll, beforeAll } from "vitest";
import { ADMIN_TOKEN, busEnv, connectAs, startNats } from "./stack.js";
import { TEST_STDIO_COMMANDS } from "./upstreams.js";

export interface RegistryOnly extends AsyncDisposable {
  readonly registry: Registry;
  readonly admin: AdminClient;
  readonly nc: NatsConnection;
  close(): Promise<void>;
}

/** A registry alone (no connector, no gateway) on its own NATS connection, listening on a free port. */
export async function startRegistry(natsUrl: string, env: Record<string, string> = {}): Promise<RegistryOnly> {
  const logger = createLogger({ component: "registry", level: "silent" });
  const nc = await connectAs(natsUrl, "registry");
  const config = loadRegistryConfig({ ...busEnv(natsUrl, "registry"), MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN, DISCOVERY_TIMEOUT_MS: "200", LOG_LEVEL: "silent", MANIFOLD_STDIO_COMMANDS: TEST_STDIO_COMMANDS, ...env });
  const registry = await buildRegistry({ config, logger, nc });
  await registry.follower.caughtUp;
  await registry.app.listen({ port: 0, host: "127.0.0.1" });
  await registry.metricsApp.listen({ port: 0, host: "127.0.0.1" });
  const close = async () => {
    await registry.close();
    await nc.close();
  };
  const admin = new AdminClient(`http://127.0.0.1:${(registry.app.server.address() as AddressInfo).port}`, ADMIN_TOKEN);
  return { registry, admin, nc, close, [Symbol.asyncDispose]: close };
}

export interface RegistryOnlySuite {
  readonly nats: NatsServer;
  readonly registry: Registry;
  readonly admin: AdminClient;
}

/**
 * A NATS server and a registry alone for the tests of the suite it is called in: started before
 * them, stopped after them. Its fields are read in tests and hooks, once the registry is up.
 */
export function useRegistryOnly(env: Record<string, string> = {}): RegistryOnlySuite {
  let nats: NatsServer | undefined;
  let r: RegistryOnly | undefined;
  beforeAll(async () => {
    nats = await startNats();
    r = await startRegistry(nats.url, env);
  });
  afterAll(async () => {
    await r?.close();
    await nats?.stop();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error("useRegistryOnly: read before the suite's beforeAll started the registry");
    return value;
  };
  return {
    get nats() {
      return started(nats);
    },
    get registry() {
      return started(r).registry;
    },
    get admin() {
      return started(r).admin;
    },
  };
}
