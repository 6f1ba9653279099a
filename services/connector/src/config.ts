import { LogLevel, Milliseconds, Port, parseEnv } from "@manifold/contracts";
import { z } from "zod";

const ConnectorEnv = z.object({
  NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  /** `*` serves every registered upstream; otherwise a comma-separated list of names. */
  CONNECTOR_UPSTREAMS: z
    .string()
    .default("*")
    .transform((v) => (v.trim() === "*" ? ("*" as const) : v.split(",").map((s) => s.trim()).filter(Boolean))),
  CONNECTOR_HOST: z.string().default("127.0.0.1"),
  CONNECTOR_PORT: Port.default(8082),
  CALL_TIMEOUT_MS: Milliseconds.default(60_000),
  CONNECT_TIMEOUT_MS: Milliseconds.default(10_000),
  LOG_LEVEL: LogLevel,
});

export type ConnectorConfig = Readonly<z.infer<typeof ConnectorEnv>>;

export const loadConnectorConfig = (env: Record<string, string | undefined>): ConnectorConfig => parseEnv(ConnectorEnv, env);
