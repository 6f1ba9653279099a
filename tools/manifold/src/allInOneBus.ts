import { startNatsServer, type NatsServer } from "@manifold/nats-server";
import { join } from "node:path";

/**
 * The all-in-one's nats-server: JetStream under `<dataDir>/nats`, and one nkey per service in
 * `<dataDir>/nats-credentials` (seed files 0600, created on the first start and reused). The
 * server only accepts those identities, each with its role's permissions; every service
 * process is given only its own seed file (`nats.env(role)`).
 */
export function startAllInOneNats(dataDir: string, port: number, host: string): Promise<NatsServer> {
  return startNatsServer({ port, host, storeDir: join(dataDir, "nats"), credentialsDir: join(dataDir, "nats-credentials") });
}
