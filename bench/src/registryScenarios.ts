import { EventStore } from "@manifold/bus";
import type { NatsServer } from "@manifold/nats-server";
import { buildConnector, loadConnectorConfig, processSecrets } from "@manifold/connector";
import { EventType, Subjects } from "@manifold/contracts";
import { CatalogProjection, definitionHash, pinDefinition } from "@manifold/domain";
import { buildGateway, loadGatewayConfig } from "@manifold/gateway";
import { buildRegistry, loadRegistryConfig } from "@manifold/registry";
import { createLogger } from "@manifold/telemetry";
import { percentile, round } from "./load.js";
import { admin, ADMIN_TOKEN, connectRole } from "./processes.js";

const logger = createLogger({ component: "bench", level: "silent" });
const env = (nats: NatsServer, role: "registry" | "gateway" | "connector") => ({ ...nats.env(role), LOG_LEVEL: "silent", MANIFOLD_ADMIN_TOKEN: ADMIN_TOKEN, CONNECTOR_UPSTREAMS: "__none__" });

/** Follows the registry like a gateway and a connector do, reporting when each applied a virtual server. */
async function observers(nats: NatsServer) {
  const nodes: { projection: CatalogProjection; close: () => Promise<void> }[] = [];
  for (const kind of ["gateway", "connector"] as const) {
    const nc = await connectRole(nats, kind, `bench-${kind}`);
    const built =
      kind === "gateway"
        ? await buildGateway({ config: loadGatewayConfig(env(nats, "gateway")), logger, nc })
        : await buildConnector({ config: loadConnectorConfig(env(nats, "connector")), logger, nc, secrets: processSecrets({}) });
    await built.follower.caughtUp;
    nodes.push({ projection: built.projection, close: async () => (await built.close(), await nc.close()) });
  }
  return nodes;
}

/** Admin command → applied on a gateway and a connector: p50/p99 of the slower of the two. */
export async function measurePropagation(nats: NatsServer, registryUrl: string, changes: number) {
  const nodes = await observers(nats);
  const latencies: number[] = [];
  try {
    for (let i = 0; i < changes; i++) {
      const name = `prop-${i}`;
      const seen = nodes.map(
        ({ projection }) =>
          new Promise<number>((resolve) => {
            const off = projection.onApplied((event) => {
              if (event.type === EventType.virtualServerCreated && event.data.name === name) {
                off();
                resolve(performance.now());
              }
            });
          }),
      );
      const sent = performance.now();
      await admin(registryUrl, "POST", "/v1/virtual-servers", { name, tools: [{ upstream: "fast", tool: "echo" }] });
      latencies.push(Math.max(...(await Promise.all(seen))) - sent);
    }
  } finally {
    for (const node of nodes) await node.close();
  }
  latencies.sort((a, b) => a - b);
  return { changes, p50Ms: round(percentile(latencies, 50)), p99Ms: round(percentile(latencies, 99)) };
}

/** Appends a catalog of `upstreams` × `tools` straight to a fresh stream, then times each service's replay. */
export async function measureBootReplay(nats: NatsServer, upstreams: number, tools: number) {
  const nc = await connectRole(nats, "registry", "bench-seed");
  const store = await EventStore.open(nc);
  const transport = { type: "streamable-http" as const, url: "http://127.0.0.1:9/mcp", headers: {}, secretHeaders: {} };
  const pending: Promise<number>[] = [];
  for (let u = 0; u < upstreams; u++) {
    const name = `boot-${u}`;
    const subject = Subjects.upstreamEvents(name);
    const definitions = Array.from({ length: tools }, (_, t) =>
      pinDefinition({ name: `tool_${t}`, description: `Tool ${t} of ${name}`, inputSchema: { type: "object", properties: { value: { type: "string" } } } }),
    );
    pending.push(
      store
        .append(subject, { type: EventType.upstreamRegistered, version: 1, data: { name, transport, options: {} } }, { expectedVersion: 0, commandId: `${name}-r` })
        .then((seq) =>
          store.append(
            subject,
            {
              type: EventType.upstreamToolsDiscovered,
              version: 1,
              data: { name, serverInfo: { name, version: "1" }, tools: definitions.map((d) => ({ hash: definitionHash(d), definition: d })), changes: [] },
            },
            { expectedVersion: seq, commandId: `${name}-d` },
          ),
        ),
    );
    if (pending.length >= 100) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await nc.close();

  const timings: Record<string, number> = {};
  for (const kind of ["registry", "gateway", "connector"] as const) {
    const conn = await connectRole(nats, kind, `bench-boot-${kind}`);
    const started = performance.now();
    const built =
      kind === "registry"
        ? await buildRegistry({ config: loadRegistryConfig(env(nats, "registry")), logger, nc: conn })
        : kind === "gateway"
          ? await buildGateway({ config: loadGatewayConfig(env(nats, "gateway")), logger, nc: conn })
          : await buildConnector({ config: loadConnectorConfig(env(nats, "connector")), logger, nc: conn, secrets: processSecrets({}) });
    await built.follower.caughtUp;
    timings[kind] = round(performance.now() - started, 1);
    if (built.projection.upstream(`boot-${upstreams - 1}`)?.tools.size !== tools) throw new Error(`${kind} replay incomplete`);
    await built.close();
    await conn.close();
  }
  return { upstreams, tools, events: upstreams * 2, replayMs: timings };
}
