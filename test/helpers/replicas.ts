import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { busEnv } from "./stack.js";

/** Two gateway processes on free ports, beside the stack's own: `stop` ends them. */
export async function spawnGateways(nats: NatsServer, env: Record<string, string>): Promise<{ ports: number[]; processes: ServiceProcess[]; stop(): Promise<void> }> {
  const ports = [await freePort(), await freePort()];
  const gateways: ServiceProcess[] = [];
  for (const port of ports) {
    const gateway = spawnService("gateway", serviceEntry("gateway"), [], { ...busEnv(nats, "gateway"), LOG_LEVEL: "warn", GATEWAY_PORT: String(port), GATEWAY_METRICS_PORT: String(await freePort()), ...env });
    gateways.push(gateway);
    await gateway.ready(`http://127.0.0.1:${port}/readyz`);
  }
  return { ports, processes: gateways, stop: async () => void (await Promise.all(gateways.map((g) => g.stop()))) };
}
