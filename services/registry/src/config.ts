import { LogLevel, Milliseconds, Port, parseEnv } from "@manifold/contracts";
import { z } from "zod";

const RegistryEnv = z.object({
  NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  REGISTRY_HOST: z.string().default("127.0.0.1"),
  REGISTRY_PORT: Port.default(8081),
  MANIFOLD_ADMIN_TOKEN: z.string().min(16, { message: "must be set to a secret of at least 16 characters" }),
  DISCOVERY_TIMEOUT_MS: Milliseconds.default(15_000),
  REGISTRY_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
  /** A connector replica's health report older than this no longer counts. */
  HEALTH_STALE_MS: Milliseconds.default(30_000),
  /** Audit records older than this are dropped. */
  AUDIT_MAX_AGE_HOURS: z.coerce.number().positive().default(30 * 24),
  /** Past this size the oldest audit records are dropped first. */
  AUDIT_MAX_BYTES: z.coerce.number().int().positive().default(1024 ** 3),
  LOG_LEVEL: LogLevel,
});

export type RegistryConfig = Readonly<z.infer<typeof RegistryEnv>>;

export const loadRegistryConfig = (env: Record<string, string | undefined>): RegistryConfig => parseEnv(RegistryEnv, env);
