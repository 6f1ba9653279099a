import type { Logger } from "@manifold/telemetry";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectCoalescing } from "./transport.js";

export interface BusOptions {
  url: string;
  /** Shown in the server's connection list, e.g. `gateway`. */
  name: string;
  logger: Logger;
}

/** Connects and keeps reconnecting for ever: a node outlives any NATS restart. */
export async function connectBus({ url, name, logger }: BusOptions): Promise<NatsConnection> {
  const nc = await connectCoalescing({
    servers: url.split(","),
    name: `manifold-${name}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    pingInterval: 10_000,
    // nats.js otherwise builds two Error objects (stack traces) per request, eagerly, in case
    // it times out: a fifth of the gateway's CPU per call. Bus failures are mapped to coded
    // errors that name the responder, so those stacks would add nothing.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect" || status.type === "error") {
        logger.warn({ status: status.type, server: "server" in status ? status.server : undefined }, "nats connection status");
      }
    }
  })();
  logger.info({ server: nc.getServer() }, "connected to nats");
  return nc;
}
