import { BusEnv, LogLevel, Milliseconds, Port, parseEnv } from "@manifold/contracts";
import { z } from "zod";

const GatewayEnv = z.object({
  ...BusEnv.shape,
  GATEWAY_HOST: z.string().default("127.0.0.1"),
  GATEWAY_PORT: Port.default(8080),
  /** Largest accepted request body; larger ones get 413. */
  GATEWAY_BODY_LIMIT_BYTES: z.coerce.number().int().positive().default(1024 * 1024),
  /** Time budget of one tools/call end to end; the connector is told the same budget. */
  CALL_TIMEOUT_MS: Milliseconds.default(60_000),
  /** A session with no request for this long is closed. */
  SESSION_IDLE_MS: Milliseconds.default(30 * 60_000),
  /** Sessions one replica holds at most; past it, initialize gets 503 `at_capacity` (memory stays bounded). */
  GATEWAY_MAX_SESSIONS: z.coerce.number().int().positive().default(10_000),
  /** Sessions one caller (consumer or token subject) may hold on one replica; past it, 429 `too_many_sessions`. */
  GATEWAY_MAX_SESSIONS_PER_PRINCIPAL: z.coerce.number().int().positive().default(1_000),
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
