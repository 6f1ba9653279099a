import { inboxPrefix, type BusConfig, type BusRole } from "@manifold/contracts";
import type { Logger } from "@manifold/telemetry";
import { nkeyAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { readFileSync } from "node:fs";
import { connectCoalescing } from "./transport.js";

export interface BusTls {
  /** CA that signed the servers' certificates. */
  caFile?: string | undefined;
  /** Client certificate and key, for servers that verify clients. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

export interface BusOptions {
  url: string;
  /** Shown in the server's connection list, e.g. `gateway`. */
  name: string;
  logger: Logger;
  /** The identity's role: replies arrive under the inbox prefix only this role may subscribe to. */
  role?: BusRole | undefined;
  /** File holding the identity's nkey seed; without it the connection is anonymous. */
  seedFile?: string | undefined;
  /** Connect over TLS (required when set). */
  tls?: BusTls | undefined;
}

/** The connection settings of a service's parsed configuration. */
export const busOptionsOf = (config: BusConfig): Pick<BusOptions, "url" | "seedFile" | "tls"> => ({
  url: config.NATS_URL,
  seedFile: config.NATS_NKEY_SEED_FILE,
  tls: config.NATS_TLS_CA_FILE || config.NATS_TLS_CERT_FILE ? { caFile: config.NATS_TLS_CA_FILE, certFile: config.NATS_TLS_CERT_FILE, keyFile: config.NATS_TLS_KEY_FILE } : undefined,
});

/**
 * Read at every (re)connect, so a rotated seed file is picked up. A failure names the file,
 * never its content.
 */
function seedReader(file: string): () => Uint8Array {
  return () => {
    try {
      return new TextEncoder().encode(readFileSync(file, "utf8").trim());
    } catch (error) {
      throw new Error(`cannot read the nkey seed file '${file}' (NATS_NKEY_SEED_FILE): ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
    }
  };
}

const prefixes = new WeakMap<NatsConnection, string>();

/** The inbox prefix the connection's replies use (nats.js' own default without a role). */
export const inboxPrefixOf = (nc: NatsConnection): string => prefixes.get(nc) ?? "_INBOX";

/** Connects and keeps reconnecting for ever: a node outlives any NATS restart. */
export async function connectBus({ url, name, logger, role, seedFile, tls }: BusOptions): Promise<NatsConnection> {
  const prefix = role ? inboxPrefix(role) : undefined;
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
    ...(prefix ? { inboxPrefix: prefix } : {}),
    ...(seedFile ? { authenticator: nkeyAuthenticator(seedReader(seedFile)) } : {}),
    ...(tls ? { tls: Object.fromEntries(Object.entries(tls).filter(([, v]) => v !== undefined)) } : {}),
  });
  if (prefix) prefixes.set(nc, prefix);
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect" || status.type === "reconnect" || status.type === "error") {
        logger.warn({ status: status.type, server: "server" in status ? status.server : undefined }, "nats connection status");
      }
    }
  })();
  logger.info({ server: nc.getServer(), role, tls: tls !== undefined }, "connected to nats");
  return nc;
}
