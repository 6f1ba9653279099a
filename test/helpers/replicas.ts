import { serviceEntry, spawnService, type ServiceProcess } from "@manifold/cli";
import { freePort, type NatsServer } from "@manifold/nats-server";
import { startRecordingUpstream, type RecordingUpstream } from "../fixtures/recordingUpstream.js";
import { registerUpstreams } from "./catalog.js";
import { busEnv, startNats, startStack, type Stack } from "./stack.js";

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

/** A connector process serving `upstreams` as replica `id`, ready, with the port of its health routes: the suites that kill, freeze or scale replicas. */
export async function spawnConnector(nats: NatsServer | string, id: string, upstreams: string, env: Record<string, string> = {}): Promise<ServiceProcess & { port: number }> {
  const port = await freePort();
  const replica = spawnService(`connector-${id}`, serviceEntry("connector"), [], {
    ...busEnv(nats, "connector"),
    CONNECTOR_UPSTREAMS: upstreams,
    CONNECTOR_REPLICA_ID: id,
    CONNECTOR_PORT: String(port),
    LOG_LEVEL: "warn",
    ...env,
  });
  await replica.ready(`http://127.0.0.1:${port}/readyz`);
  return Object.assign(replica, { port });
}

/** A stack without a connector of its own, a recording upstream registered as `upstream`, and the connector replicas `ids` serving it. */
export interface ReplicaStack extends AsyncDisposable {
  readonly nats: NatsServer;
  readonly stack: Stack;
  readonly recording: RecordingUpstream;
  /** Every replica started, in order (`spawn` adds one). */
  readonly replicas: ServiceProcess[];
  spawn(id: string): Promise<ServiceProcess>;
  close(): Promise<void>;
}

export async function startReplicaStack(upstream: string, ids: string[]): Promise<ReplicaStack> {
  const nats = await startNats();
  const [stack, recording] = await Promise.all([startStack(nats.url, {}, { connector: false }), startRecordingUpstream()]);
  const replicas: ServiceProcess[] = [];
  const spawn = async (id: string) => {
    const replica = await spawnConnector(nats, id, upstream);
    replicas.push(replica);
    return replica;
  };
  await Promise.all(ids.map(spawn));
  await registerUpstreams(stack, { name: upstream, transport: { type: "streamable-http", url: recording.url } });
  const close = async () => {
    // A frozen replica (SIGSTOP) cannot stop until it runs again.
    for (const replica of replicas) if (replica.child.signalCode === null) replica.child.kill("SIGCONT");
    await Promise.all(replicas.map((r) => r.stop()));
    await stack.close();
    await recording.close();
    await nats.stop();
  };
  return { nats, stack, recording, replicas, spawn, close, [Symbol.asyncDispose]: close };
}
