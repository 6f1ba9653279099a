import { z } from "zod";

/** Thrown at startup when the environment does not describe a valid configuration. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Parses a service's configuration from the environment once, fails naming every bad
 * variable, and returns a frozen object: nothing else in a service reads `process.env`.
 */
export function parseEnv<S extends z.ZodObject>(schema: S, env: Record<string, string | undefined>): Readonly<z.infer<S>> {
  const result = schema.safeParse(env);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
    throw new ConfigError(`invalid configuration: ${problems}`);
  }
  return Object.freeze(result.data);
}

/**
 * A service's configuration, or its end: a `ConfigError` is written to stderr as one line naming
 * the service and every bad variable, and the process exits 1 (uncaught, it was a stack trace
 * through `parseEnv` with the message on its fifth line). Any other error is thrown on.
 */
export function configOrExit<T>(service: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${service}: ${error.message}\n`);
    process.exit(1);
  }
}

export const LogLevel = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info");
const NOT_A_PORT = "must be a port number, an integer from 0 to 65535";
export const Port = z.coerce.number({ error: NOT_A_PORT }).int({ error: NOT_A_PORT }).min(0, { error: NOT_A_PORT }).max(65535, { error: NOT_A_PORT });
export const Milliseconds = z.coerce.number().int().positive();

/**
 * `NATS_STREAM_REPLICAS`: how many cluster nodes hold each stream and KV bucket a service
 * creates (1 on a single server, 3 on a three-node cluster). Existing ones keep their count.
 */
export const StreamReplicas = z.coerce.number().int().min(1).max(5).default(1);

/**
 * How a service reaches NATS, shared by every service's schema: the servers, its own nkey
 * (a file holding the seed; the seed itself is never logged) and TLS.
 */
export const BusEnv = z.object({
  NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  /** File holding this service's nkey seed (`SU…`); nats-server knows its public key and permissions. */
  NATS_NKEY_SEED_FILE: z.string().min(1).optional(),
  /** CA that signed the servers' certificates; set to connect over TLS. */
  NATS_TLS_CA_FILE: z.string().min(1).optional(),
  /** Client certificate and key, when the servers verify clients (`verify: true`). */
  NATS_TLS_CERT_FILE: z.string().min(1).optional(),
  NATS_TLS_KEY_FILE: z.string().min(1).optional(),
  NATS_STREAM_REPLICAS: StreamReplicas,
});
export type BusConfig = z.infer<typeof BusEnv>;
