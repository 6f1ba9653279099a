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
  guardCallbacks(nc, logger);
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

/** At most one log line a second for callbacks that threw, with how many were not logged. */
const GUARD_LOG_MS = 1_000;

/**
 * Every subscription callback on `nc` runs guarded. nats.js calls callbacks inside its socket read
 * loop, and a throw there ends the loop ("reader closed"): the connection read nothing more until
 * it was found stale and reconnected, 27 s later (helper-151: one unreadable message on a subject
 * another service may publish made a gateway deaf to every tenant's calls). A callback that throws
 * or rejects loses its own message and nothing else; it is logged by subject and error name only
 * (a JSON error's message quotes the bytes it read, which may be anyone's).
 */
function guardCallbacks(nc: NatsConnection, logger: Logger): void {
  let lastLog = 0;
  let unlogged = 0;
  const report = (subject: string, thrown: unknown) => {
    const now = Date.now();
    if (now - lastLog < GUARD_LOG_MS) return void unlogged++;
    logger.error({ subject, error: thrown instanceof Error ? thrown.name : typeof thrown, alsoDropped: unlogged }, "a bus message's handler threw; the message is dropped");
    lastLog = now;
    unlogged = 0;
  };
  const subscribe = nc.subscribe.bind(nc);
  nc.subscribe = (subject, opts) => {
    const callback = opts?.callback;
    if (!callback) return subscribe(subject, opts);
    return subscribe(subject, {
      ...opts,
      callback: (error, msg) => {
        try {
          const result = callback(error, msg) as unknown;
          if (result instanceof Promise) result.catch((thrown: unknown) => report(subject, thrown));
        } catch (thrown) {
          report(subject, thrown);
        }
      },
    });
  };
}
