import { LogLevel, Milliseconds, Port, parseEnv } from "@manifold/contracts";
import { z } from "zod";

const GatewayEnv = z.object({
  NATS_URL: z.string().default("nats://127.0.0.1:4222"),
  GATEWAY_HOST: z.string().default("127.0.0.1"),
  GATEWAY_PORT: Port.default(8080),
  /** Largest accepted request body; larger ones get 413. */
  GATEWAY_BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Time budget of one tools/call end to end; the connector is told the same budget. */
  CALL_TIMEOUT_MS: Milliseconds.default(60_000),
  /** A session with no request for this long is closed. */
  SESSION_IDLE_MS: Milliseconds.default(30 * 60_000),
  /** A connector replica's health report older than this no longer counts. */
  HEALTH_STALE_MS: Milliseconds.default(30_000),
  /** On shutdown, how long calls in flight may take to finish. */
  GATEWAY_DRAIN_MS: Milliseconds.default(10_000),
  /** `required`: every request needs an API key or a JWT and a grant (deny unless granted). `off` only for trusted test setups. */
  GATEWAY_AUTH: z.enum(["required", "off"]).default("required"),
  LOG_LEVEL: LogLevel,
});

export type GatewayConfig = Readonly<z.infer<typeof GatewayEnv>>;

export const loadGatewayConfig = (env: Record<string, string | undefined>): GatewayConfig => parseEnv(GatewayEnv, env);
