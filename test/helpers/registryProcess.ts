import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { RegistryStream } from "@manifold/contracts";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { jetstreamManager } from "@nats-io/jetstream";
import { AdminClient } from "./admin.js";
import { ADMIN_TOKEN, busEnv, connectAs } from "./stack.js";

/** A registry in a process of its own (what a test kills, or races against another), and its admin client. */
export interface RegistryProcess {
  readonly process: ServiceProcess;
  readonly url: string;
  readonly admin: AdminClient;
}

/**
 * Starts a registry process on `ports` (free ones when omitted; the same ones again to come back
 * where a killed one was), with `env` added to its environment, and waits until it is ready.
 */
export async function spawnRegistry(nats: NatsServer, name = "registry", ports?: { port: number; metricsPort: number }, env: Record<string, string> = {}): Promise<RegistryProcess> {
  const { port, metricsPort } = ports ?? { port: await freePort(), metricsPort: await freePort() };
  const process = spawnService(name, serviceEntry("registry"), [], {
    ...busEnv(nats, "registry"),
    LOG_LEVEL: "warn",
    MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN,
    REGISTRY_PORT: String(port),
    REGISTRY_METRICS_PORT: String(metricsPort),
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await process.ready(`${url}/readyz`);
  return { process, url, admin: new AdminClient(url, ADMIN_TOKEN) };
}

/** Every event in the registry's log, in order, as stored. */
export async function registryEvents<T = { type: string; data: any; meta: { commandId: string } }>(nats: NatsServer): Promise<T[]> {
  const nc = await connectAs(nats, "registry", "probe");
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(RegistryStream.name)).state.last_seq;
    const events: T[] = [];
    for (let seq = 1; seq <= last; seq++) {
      const event = (await jsm.streams.getMessage(RegistryStream.name, { seq }).catch(() => undefined))?.json<T>();
      if (event) events.push(event);
    }
    return events;
  } finally {
    await nc.close();
  }
}
